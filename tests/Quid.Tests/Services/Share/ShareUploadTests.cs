using System.Net.Sockets;
using System.Text;
using Quid.Services.Share;
using Quid.Tests.Integration;

namespace Quid.Tests.Services.Share;

/// <summary>
/// An upload inbox (<c>quid share --receive</c>) written to with the real curl: PUT and form
/// uploads, names made safe and never overwritten, the size limit, and no half upload ever
/// appearing under a name.
/// </summary>
public sealed class ShareUploadTests : IAsyncLifetime
{
    private const long Limit = 1024 * 1024;

    private readonly string _folder = ShareHost.NewFolder();
    private ShareHost _host = null!;

    private string Inbox => Path.Join(_folder, "inbox");

    private string Sources => Path.Join(_folder, "sources");

    public Task InitializeAsync()
    {
        _host = ShareHost.Start(_folder, new UploadInbox(Inbox, Limit));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    /// <summary>Every name in the inbox, temporary ones included.</summary>
    private string[] InboxNames() => [.. Directory.EnumerateFileSystemEntries(Inbox).Select(p => Path.GetFileName(p)!).Order(StringComparer.Ordinal)];

    [Fact]
    public async Task Curl_T_stores_the_file_under_its_name()
    {
        byte[] photo = ShareHost.RandomBytes(300_000, seed: 2);
        string source = ShareHost.Write(Sources, "photo.jpg", photo);
        var (code, written, _) = await Curl.RunAsync("-s", "-w", "%{http_code}", "-T", source, _host.Url("/"));
        Assert.Equal(0, code);
        Assert.Equal("photo.jpg\n201", written);
        Assert.Equal(["photo.jpg"], InboxNames());
        Assert.Equal(ShareHost.Sha256(photo), ShareHost.Sha256(Path.Join(Inbox, "photo.jpg")));
    }

    [Fact]
    public async Task A_chunked_PUT_is_stored_too()
    {
        byte[] bytes = ShareHost.RandomBytes(200_000, seed: 3);
        string source = ShareHost.Write(Sources, "notes.txt", bytes);
        var (_, written, _) = await Curl.RunAsync("-s", "-w", "%{http_code}", "-H", "Transfer-Encoding: chunked", "-T", source, _host.Url("/"));
        Assert.Equal("notes.txt\n201", written);
        Assert.Equal(ShareHost.Sha256(bytes), ShareHost.Sha256(Path.Join(Inbox, "notes.txt")));
    }

    [Fact]
    public async Task A_name_that_is_taken_gets_a_suffix_and_nothing_is_overwritten()
    {
        for (int i = 0; i < 3; i++)
        {
            string source = ShareHost.Write(Sources, "report.txt", Encoding.UTF8.GetBytes($"version {i}"));
            await Curl.RunAsync("-s", "-T", source, _host.Url("/"));
        }
        string form = ShareHost.Write(Sources, "form/report.txt", "version 3"u8.ToArray());
        var (_, stored, _) = await Curl.RunAsync("-s", "-F", $"file=@{form}", _host.Url("/"));
        Assert.Equal("report (3).txt\n", stored);
        Assert.Equal(["report (1).txt", "report (2).txt", "report (3).txt", "report.txt"], InboxNames());
        Assert.Equal("version 0", File.ReadAllText(Path.Join(Inbox, "report.txt")));
        Assert.Equal("version 2", File.ReadAllText(Path.Join(Inbox, "report (2).txt")));
        Assert.Equal("version 3", File.ReadAllText(Path.Join(Inbox, "report (3).txt")));
    }

    [Fact]
    public async Task A_form_upload_stores_each_file_and_skips_the_other_fields()
    {
        byte[] first = ShareHost.RandomBytes(700_000, seed: 4);
        string a = ShareHost.Write(Sources, "a.bin", first);
        string b = ShareHost.Write(Sources, "b.txt", "second\r\n--not a boundary\r\n"u8.ToArray());
        var (code, written, _) = await Curl.RunAsync("-s", "-w", "%{http_code}", "-F", "note=hello", "-F", $"file=@{a}", "-F", $"file=@{b}", _host.Url("/"));
        Assert.Equal(0, code);
        Assert.Equal("a.bin\nb.txt\n201", written);
        Assert.Equal(["a.bin", "b.txt"], InboxNames());
        Assert.Equal(ShareHost.Sha256(first), ShareHost.Sha256(Path.Join(Inbox, "a.bin")));
        Assert.Equal("second\r\n--not a boundary\r\n", File.ReadAllText(Path.Join(Inbox, "b.txt")));
    }

    [Fact]
    public async Task A_browser_gets_the_form_and_an_HTML_receipt()
    {
        var (_, page, _) = await Curl.RunAsync("-s", "-H", "Host: abcdef.quid", _host.Url("/"));
        Assert.Contains("<form method=\"post\" action=\"/\" enctype=\"multipart/form-data\">", page, StringComparison.Ordinal);
        Assert.Contains("<code>curl -T FILE http://abcdef.quid/</code>", page, StringComparison.Ordinal);
        Assert.Contains("Up to 1 MiB at a time", page, StringComparison.Ordinal);
        string source = ShareHost.Write(Sources, "<x>.txt", "x"u8.ToArray());
        var (_, receipt, _) = await Curl.RunAsync("-s", "-H", "Accept: text/html,*/*", "-F", $"file=@{source}", _host.Url("/"));
        Assert.Contains("<li>_x_.txt</li>", receipt, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Uploaders_see_nothing_of_an_inbox_that_is_not_listed()
    {
        string source = ShareHost.Write(Sources, "private.txt", "mine"u8.ToArray());
        await Curl.RunAsync("-s", "-T", source, _host.Url("/"));
        var (_, page, _) = await Curl.RunAsync("-s", _host.Url("/"));
        Assert.DoesNotContain("private.txt", page, StringComparison.Ordinal);
        Assert.Equal("404", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", _host.Url("/private.txt"))).Output);
        Assert.Equal("404", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", _host.Url("/?format=json"))).Output);
    }

    [Fact]
    public async Task A_listed_inbox_lists_its_files_and_serves_them_sandboxed()
    {
        string folder = ShareHost.NewFolder();
        await using var host = ShareHost.Start(folder, new UploadInbox(Path.Join(folder, "inbox"), listed: true));
        string source = ShareHost.Write(folder, "page.html", "<script>alert(1)</script>"u8.ToArray());
        await Curl.RunAsync("-s", "-T", source, host.Url("/"));
        var (_, page, _) = await Curl.RunAsync("-s", host.Url("/"));
        Assert.Contains("<form", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"page.html\">page.html</a>", page, StringComparison.Ordinal);
        var (_, head, _) = await Curl.RunAsync("-s", "-D", "-", host.Url("/page.html"));
        Assert.Contains("Content-Security-Policy: sandbox\r\n", head, StringComparison.Ordinal);
        Assert.EndsWith("<script>alert(1)</script>", head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_upload_over_the_limit_gets_413_and_leaves_nothing_behind()
    {
        string source = ShareHost.Write(Sources, "large.bin", ShareHost.RandomBytes((int)Limit + 1, seed: 5));
        // Declared too large (with and without 100-continue), streamed past the limit in chunks, and in a form.
        string[][] uploads =
        [
            ["-T", source],
            ["-H", "Expect:", "-T", source],
            ["-H", "Transfer-Encoding: chunked", "-T", source],
            ["-F", $"file=@{source}"],
            ["-H", "Transfer-Encoding: chunked", "-F", $"file=@{source}"],
        ];
        foreach (var upload in uploads)
        {
            var (_, written, _) = await Curl.RunAsync(["-s", "-w", "%{http_code}", .. upload, _host.Url("/")]);
            Assert.EndsWith("413", written, StringComparison.Ordinal);
            Assert.Empty(InboxNames());
        }
        string fits = ShareHost.Write(Sources, "fits.bin", ShareHost.RandomBytes((int)Limit, seed: 6));
        Assert.Equal("201", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "-F", $"file=@{fits}", _host.Url("/"))).Output);
    }

    [Fact]
    public async Task Names_are_made_safe()
    {
        string source = ShareHost.Write(Sources, "x", "x"u8.ToArray());
        Assert.Equal("bashrc\n", (await Curl.RunAsync("-s", "-T", source, _host.Url("/.bashrc"))).Output);
        Assert.Equal("passwd\n", (await Curl.RunAsync("-s", "-T", source, _host.Url("/etc/passwd"))).Output);
        Assert.Equal("_gpj.exe\n", (await Curl.RunAsync("-s", "-T", source, _host.Url("/%E2%80%AEgpj.exe"))).Output);
        Assert.Equal("evil.txt\n", (await Curl.RunAsync("-s", "-F", $"file=@{source};filename=../../evil.txt", _host.Url("/"))).Output);
        Assert.Equal("win.txt\n", (await Curl.RunAsync("-s", "-F", $"file=@{source};filename=C:\\Users\\me\\win.txt", _host.Url("/"))).Output);
        Assert.Equal("400", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "--path-as-is", "-T", source, _host.Url("/../escape.txt"))).Output);
        Assert.Equal(["_gpj.exe", "bashrc", "evil.txt", "passwd", "win.txt"], InboxNames());
        Assert.False(File.Exists(Path.Join(_folder, "escape.txt")));
    }

    [Theory]
    [InlineData("photo.jpg", "photo.jpg")]
    [InlineData("../../etc/passwd", "passwd")]
    [InlineData("..", "upload")]
    [InlineData("...hidden", "hidden")]
    [InlineData("a\u0000b\u001fc.txt", "a_b_c.txt")]
    [InlineData("what?<now>*.txt", "what__now__.txt")]
    [InlineData("trailing. . ", "trailing")]
    [InlineData("", "upload")]
    [InlineData("été.txt", "été.txt")]
    public void SafeName_keeps_a_plain_name_and_nothing_dangerous(string requested, string safe) =>
        Assert.Equal(safe, UploadInbox.SafeName(requested));

    [Fact]
    public void SafeName_cuts_a_long_name_to_whole_characters_and_keeps_its_extension()
    {
        string safe = UploadInbox.SafeName(string.Concat(Enumerable.Repeat("é", 300)) + ".tar.gz");
        Assert.True(Encoding.UTF8.GetByteCount(safe) <= UploadInbox.MaxNameBytes);
        Assert.EndsWith("éé.gz", safe, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_half_upload_never_appears_and_its_temporary_file_is_removed()
    {
        using (var socket = new Socket(SocketType.Stream, ProtocolType.Tcp))
        {
            await socket.ConnectAsync(_host.Listener.LocalEndPoint);
            await socket.SendAsync("PUT /half.bin HTTP/1.1\r\nHost: share\r\nContent-Length: 100000\r\n\r\n"u8.ToArray());
            await socket.SendAsync(new byte[50_000]);
            await Eventually.WaitUntilAsync(() => InboxNames().Length == 1, TimeSpan.FromSeconds(10), "the upload's temporary file");
            Assert.StartsWith(".quid-upload-", InboxNames()[0], StringComparison.Ordinal);
        }
        await Eventually.WaitUntilAsync(() => InboxNames().Length == 0, TimeSpan.FromSeconds(10), "the half upload to be removed");
    }
}
