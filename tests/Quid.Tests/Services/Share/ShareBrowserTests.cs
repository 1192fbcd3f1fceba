using Microsoft.Playwright;
using Quid.Services.Share;

namespace Quid.Tests.Services.Share;

/// <summary>
/// Headless Chromium (Debian's, installed by .ci/run) uses an inbox the way a person would:
/// chooses two files in the upload form, sends them, reads the receipt, and downloads one back
/// from the listing with its name intact.
/// </summary>
public sealed class ShareBrowserTests
{
    private const string Chromium = "/usr/bin/chromium";

    [Fact]
    public async Task Chromium_sends_files_with_the_form_and_downloads_them_from_the_listing()
    {
        Assert.True(File.Exists(Chromium), "Chromium is not installed: run .ci/run, or 'apt-get install -y chromium'.");
        string folder = ShareHost.NewFolder();
        byte[] photo = ShareHost.RandomBytes(2_500_000, seed: 8);
        string first = ShareHost.Write(folder, "sources/été photo.jpg", photo);
        string second = ShareHost.Write(folder, "sources/notes.txt", "notes\n"u8.ToArray());
        string inbox = Path.Join(folder, "inbox");
        await using var host = ShareHost.Start(folder, new UploadInbox(inbox, listed: true));

        using var playwright = await Playwright.CreateAsync();
        await using var browser = await playwright.Chromium.LaunchAsync(new()
        {
            ExecutablePath = Chromium,
            Headless = true,
            Args = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
        });
        var page = await browser.NewPageAsync(new() { AcceptDownloads = true });
        await page.GotoAsync(host.Url("/"));
        await page.SetInputFilesAsync("input[type=file]", [first, second]);
        await page.ClickAsync("button[type=submit]");
        await page.WaitForSelectorAsync("h1:text('Received')");
        Assert.Equal(["été photo.jpg", "notes.txt"], await page.Locator("li").AllTextContentsAsync());
        Assert.Equal(ShareHost.Sha256(photo), ShareHost.Sha256(Path.Join(inbox, "été photo.jpg")));
        Assert.Equal("notes\n", File.ReadAllText(Path.Join(inbox, "notes.txt")));

        await page.ClickAsync("text=Send more");
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync("a[href='%C3%A9t%C3%A9%20photo.jpg?download=1']"));
        Assert.Equal("été photo.jpg", download.SuggestedFilename);
        string saved = Path.Join(folder, "downloaded.jpg");
        await download.SaveAsAsync(saved);
        Assert.Equal(ShareHost.Sha256(photo), ShareHost.Sha256(saved));
    }
}
