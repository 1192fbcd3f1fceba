using Microsoft.Playwright;

namespace Quid.Tests.Integration;

/// <summary>Debian's Chromium (installed by .ci/run), headless, and quiet: it reaches nothing on its own.</summary>
internal static class HeadlessChromium
{
    public const string Executable = "/usr/bin/chromium";

    public static Task<IBrowser> LaunchAsync(IPlaywright playwright)
    {
        Assert.True(File.Exists(Executable), "Chromium is not installed: run .ci/run, or 'apt-get install -y chromium'.");
        return playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Executable,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
    }
}
