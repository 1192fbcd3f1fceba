using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using Quid.Services.Share;
using Quid.Tests.Integration;

namespace Quid.Tests.Services.Share;

/// <summary>
/// A shared folder fetched with the real curl and wget over loopback: listings, whole files,
/// ranges, resumed downloads, validators, and every way out of the shared folder refused.
/// </summary>
public sealed class ShareDownloadTests : IAsyncLifetime
{
    private const string OutsideSecret = "outside the share: never served";

    private readonly string _folder = ShareHost.NewFolder();
    private readonly byte[] _big = ShareHost.RandomBytes(3 * 1024 * 1024 + 12_345, seed: 1);
    private ShareHost _host = null!;

    private string Shared => Path.Join(_folder, "shared");

    private string Downloads => Path.Join(_folder, "downloads");

    public Task InitializeAsync()
    {
        ShareHost.Write(Shared, "big.bin", _big);
        ShareHost.Write(Shared, "docs/readme.txt", "read me\n"u8.ToArray());
        ShareHost.Write(Shared, "<b>&amp; \"quoted\" é.txt", "escaped\n"u8.ToArray());
        ShareHost.Write(Shared, ".secret", "hidden\n"u8.ToArray());
        ShareHost.Write(Shared, ".hidden-folder/inside.txt", "hidden\n"u8.ToArray());
        Directory.CreateDirectory(Path.Join(Shared, "empty folder"));
        ShareHost.Write(_folder, "outside.txt", Encoding.UTF8.GetBytes(OutsideSecret));
        File.CreateSymbolicLink(Path.Join(Shared, "escape.txt"), Path.Join(_folder, "outside.txt"));
        File.CreateSymbolicLink(Path.Join(Shared, "relative-escape.txt"), "../outside.txt");
        Directory.CreateSymbolicLink(Path.Join(Shared, "escape-folder"), _folder);
        File.CreateSymbolicLink(Path.Join(Shared, "inside.txt"), "docs/readme.txt");
        Directory.CreateDirectory(Downloads);
        _host = ShareHost.Start(_folder, new SharedFiles([Shared]));
        return Task.CompletedTask;
    }

    public async Task DisposeAsync() => await _host.DisposeAsync();

    [Fact]
    public async Task The_listing_shows_folders_first_escapes_names_and_leaves_out_hidden_files_and_links_out_of_the_share()
    {
        var (code, page, _) = await Curl.RunAsync("-s", "-D", "-", _host.Url("/"));
        Assert.Equal(0, code);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", page, StringComparison.Ordinal);
        Assert.Contains("Content-Type: text/html; charset=utf-8\r\n", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"docs/\">docs/</a>", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"empty%20folder/\">empty folder/</a>", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"big.bin\">big.bin</a>", page, StringComparison.Ordinal);
        Assert.Contains("<a href=\"inside.txt\">", page, StringComparison.Ordinal);
        Assert.True(page.IndexOf("empty folder/", StringComparison.Ordinal) < page.IndexOf("big.bin", StringComparison.Ordinal), "folders come first");
        Assert.Contains("&lt;b&gt;&amp;amp; &quot;quoted&quot;", page, StringComparison.Ordinal);
        Assert.Contains("href=\"%3Cb%3E%26amp%3B%20%22quoted%22%20%C3%A9.txt\"", page, StringComparison.Ordinal);
        Assert.DoesNotContain("<b>", page, StringComparison.Ordinal);
        Assert.DoesNotContain("secret", page, StringComparison.Ordinal);
        Assert.DoesNotContain("hidden", page, StringComparison.Ordinal);
        Assert.DoesNotContain("escape", page, StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_listing_is_JSON_when_asked_for_by_query_or_by_Accept()
    {
        foreach (var arguments in new[] { new[] { "-s", _host.Url("/?format=json") }, ["-s", "-H", "Accept: application/json", _host.Url("/")] })
        {
            var (code, json, _) = await Curl.RunAsync(arguments);
            Assert.Equal(0, code);
            using var document = JsonDocument.Parse(json);
            Assert.Equal("/", document.RootElement.GetProperty("path").GetString());
            var entries = document.RootElement.GetProperty("entries").EnumerateArray().ToList();
            Assert.Equal(["docs", "empty folder", "<b>&amp; \"quoted\" é.txt", "big.bin", "inside.txt"], entries.Select(e => e.GetProperty("name").GetString()));
            Assert.Equal("folder", entries[0].GetProperty("type").GetString());
            var big = entries.Single(e => e.GetProperty("name").GetString() == "big.bin");
            Assert.Equal(_big.Length, big.GetProperty("size").GetInt64());
            Assert.Equal("file", big.GetProperty("type").GetString());
        }
    }

    [Fact]
    public async Task A_file_of_a_few_megabytes_arrives_intact()
    {
        string saved = Path.Join(Downloads, "big.bin");
        var (code, written, _) = await Curl.RunAsync("-s", "-o", saved, "-w", "%{http_code} %{content_type} %{size_download}", _host.Url("/big.bin"));
        Assert.Equal(0, code);
        Assert.Equal($"200 application/octet-stream {_big.Length}", written);
        Assert.Equal(ShareHost.Sha256(_big), ShareHost.Sha256(saved));
    }

    [Theory]
    [InlineData("1000-1999", 1000, 1000)]
    [InlineData("-500", -1, 500)]
    [InlineData("3000000-", 3_000_000, -1)]
    [InlineData("0-99999999", 0, -1)]
    public async Task A_range_is_sent_as_206_with_its_Content_Range(string range, long start, long count)
    {
        if (start < 0) start = _big.Length - count;
        if (count < 0) count = _big.Length - start;
        string saved = Path.Join(Downloads, "part");
        var (code, head, _) = await Curl.RunAsync("-s", "-r", range, "-D", "-", "-o", saved, _host.Url("/big.bin"));
        Assert.Equal(0, code);
        Assert.StartsWith("HTTP/1.1 206 Partial Content\r\n", head, StringComparison.Ordinal);
        Assert.Contains($"Content-Range: bytes {start}-{start + count - 1}/{_big.Length}\r\n", head, StringComparison.Ordinal);
        Assert.Contains($"Content-Length: {count}\r\n", head, StringComparison.Ordinal);
        Assert.Equal(_big.AsSpan((int)start, (int)count).ToArray(), File.ReadAllBytes(saved));
    }

    [Fact]
    public async Task A_range_past_the_end_gets_416_with_the_length()
    {
        var (_, head, _) = await Curl.RunAsync("-s", "-r", $"{_big.Length}-", "-D", "-", "-o", "/dev/null", _host.Url("/big.bin"));
        Assert.StartsWith("HTTP/1.1 416 Range Not Satisfiable\r\n", head, StringComparison.Ordinal);
        Assert.Contains($"Content-Range: bytes */{_big.Length}\r\n", head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Curl_resumes_an_interrupted_download()
    {
        string partial = Path.Join(Downloads, "big.bin");
        File.WriteAllBytes(partial, _big[..1_234_567]);
        var (code, written, errors) = await Curl.RunAsync("-s", "-S", "-C", "-", "-o", partial, "-w", "%{http_code} %{size_download}", _host.Url("/big.bin"));
        Assert.True(code == 0, errors);
        Assert.Equal($"206 {_big.Length - 1_234_567}", written);
        Assert.Equal(ShareHost.Sha256(_big), ShareHost.Sha256(partial));
    }

    [Fact]
    public async Task Wget_resumes_an_interrupted_download()
    {
        string partial = Path.Join(Downloads, "big.bin");
        File.WriteAllBytes(partial, _big[..2_000_001]);
        var (code, errors) = await ShareHost.WgetAsync("-q", "-c", "-P", Downloads, _host.Url("/big.bin"));
        Assert.True(code == 0, errors);
        Assert.Equal(ShareHost.Sha256(_big), ShareHost.Sha256(partial));
    }

    [Fact]
    public async Task Resuming_a_download_that_is_already_whole_succeeds_and_changes_nothing()
    {
        string whole = Path.Join(Downloads, "big.bin");
        File.WriteAllBytes(whole, _big);
        var (code, written, errors) = await Curl.RunAsync("-s", "-S", "-C", "-", "-o", whole, "-w", "%{http_code}", _host.Url("/big.bin"));
        Assert.True(code == 0, errors);
        Assert.Equal("416", written);
        var (wgetCode, wgetErrors) = await ShareHost.WgetAsync("-c", "-P", Downloads, _host.Url("/big.bin"));
        Assert.True(wgetCode == 0, wgetErrors);
        Assert.Contains("already fully retrieved", wgetErrors, StringComparison.Ordinal);
        Assert.Equal(ShareHost.Sha256(_big), ShareHost.Sha256(whole));
    }

    [Fact]
    public async Task HEAD_gives_the_headers_a_GET_would_and_no_body()
    {
        var (code, head, _) = await Curl.RunAsync("-s", "-I", _host.Url("/docs/readme.txt"));
        Assert.Equal(0, code);
        Assert.StartsWith("HTTP/1.1 200 OK\r\n", head, StringComparison.Ordinal);
        Assert.Contains("Content-Length: 8\r\n", head, StringComparison.Ordinal);
        Assert.Contains("Content-Type: text/plain; charset=utf-8\r\n", head, StringComparison.Ordinal);
        Assert.Contains("Accept-Ranges: bytes\r\n", head, StringComparison.Ordinal);
        Assert.Matches("ETag: \"[0-9a-f]+-[0-9a-f]+\"\r\n", head);
        Assert.Matches("Last-Modified: [A-Z][a-z]{2}, \\d{2} [A-Z][a-z]{2} \\d{4} \\d{2}:\\d{2}:\\d{2} GMT\r\n", head);
        Assert.DoesNotContain("Date:", head, StringComparison.Ordinal);
        Assert.EndsWith("\r\n\r\n", head, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_current_copy_gets_304_by_ETag_or_by_date_and_a_changed_file_does_not()
    {
        var (_, head, _) = await Curl.RunAsync("-s", "-I", _host.Url("/big.bin"));
        string etag = Field(head, "ETag");
        string modified = Field(head, "Last-Modified");
        Assert.Equal("304", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", $"If-None-Match: \"other\", {etag}", _host.Url("/big.bin"))).Output);
        Assert.Equal("304", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", $"If-Modified-Since: {modified}", _host.Url("/big.bin"))).Output);
        Assert.Equal("200", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "If-None-Match: \"other\"", _host.Url("/big.bin"))).Output);
        File.SetLastWriteTimeUtc(Path.Join(Shared, "big.bin"), DateTime.UtcNow.AddMinutes(5));
        Assert.Equal("200", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", $"If-None-Match: {etag}", _host.Url("/big.bin"))).Output);
    }

    [Fact]
    public async Task If_Range_sends_the_range_only_while_the_file_is_unchanged()
    {
        var (_, head, _) = await Curl.RunAsync("-s", "-I", _host.Url("/big.bin"));
        string etag = Field(head, "ETag");
        Assert.Equal("206 10", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-r", "0-9", "-H", $"If-Range: {etag}", _host.Url("/big.bin"))).Output);
        Assert.Equal("206 10", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-r", "0-9", "-H", $"If-Range: {Field(head, "Last-Modified")}", _host.Url("/big.bin"))).Output);
        Assert.Equal($"200 {_big.Length}", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", "-r", "0-9", "-H", "If-Range: \"stale\"", _host.Url("/big.bin"))).Output);
    }

    [Fact]
    public async Task Download_1_adds_an_attachment_disposition()
    {
        var (_, plain, _) = await Curl.RunAsync("-s", "-I", _host.Url("/docs/readme.txt"));
        Assert.DoesNotContain("Content-Disposition", plain, StringComparison.Ordinal);
        var (_, head, _) = await Curl.RunAsync("-s", "-I", _host.Url("/%3Cb%3E%26amp%3B%20%22quoted%22%20%C3%A9.txt?download=1"));
        Assert.Contains("Content-Disposition: attachment; filename=\"<b>&amp; _quoted_ _.txt\"; filename*=UTF-8''%3Cb%3E%26amp%3B%20%22quoted%22%20%C3%A9.txt\r\n", head, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("/../../../../etc/passwd")]
    [InlineData("/../outside.txt")]
    [InlineData("/docs/../../outside.txt")]
    [InlineData("/%2e%2e/outside.txt")]
    [InlineData("/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd")]
    [InlineData("/docs/..%2f..%2foutside.txt")]
    [InlineData("/..%5coutside.txt")]
    [InlineData("/%2fetc%2fpasswd")]
    [InlineData("//etc/passwd")]
    [InlineData("/docs/readme.txt%00.png")]
    [InlineData("/escape.txt")]
    [InlineData("/relative-escape.txt")]
    [InlineData("/escape-folder/outside.txt")]
    [InlineData("/escape-folder/")]
    [InlineData("/.secret")]
    [InlineData("/.hidden-folder/inside.txt")]
    [InlineData("/%2esecret")]
    [InlineData("/http://127.0.0.1/../outside.txt")]
    public async Task Every_way_out_of_the_share_is_refused(string path)
    {
        var (code, answer, _) = await Curl.RunAsync("-s", "--path-as-is", "-D", "-", _host.Url(path));
        Assert.Equal(0, code);
        Assert.Matches("^HTTP/1.1 (400 Bad Request|404 Not Found)\r\n", answer);
        Assert.DoesNotContain(OutsideSecret, answer, StringComparison.Ordinal);
        Assert.DoesNotContain("root:", answer, StringComparison.Ordinal);
        Assert.DoesNotContain("hidden", answer, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_link_inside_the_share_is_followed()
    {
        var (code, body, _) = await Curl.RunAsync("-s", _host.Url("/inside.txt"));
        Assert.Equal(0, code);
        Assert.Equal("read me\n", body);
    }

    [Fact]
    public async Task A_folder_without_its_slash_is_redirected_to_it()
    {
        var (_, written, _) = await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code} %{redirect_url}", _host.Url("/empty%20folder?format=json"));
        Assert.Equal($"301 {_host.Url("/empty%20folder/?format=json")}", written);
        var (_, listing, _) = await Curl.RunAsync("-s", "-L", _host.Url("/docs"));
        Assert.Contains("<a href=\"readme.txt\">readme.txt</a>", listing, StringComparison.Ordinal);
        Assert.Contains("<a href=\"../\">../</a>", listing, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Several_requests_share_one_connection()
    {
        var (code, written, _) = await Curl.RunAsync("-s", "-w", "%{http_code}:%{num_connects} ",
            "-o", "/dev/null", _host.Url("/big.bin"), "-o", "/dev/null", _host.Url("/missing"), "-o", "/dev/null", _host.Url("/docs/"), "-o", "/dev/null", _host.Url("/docs/readme.txt"));
        Assert.Equal(0, code);
        Assert.Equal("200:1 404:0 200:0 200:0 ", written);
    }

    [Fact]
    public async Task Several_paths_appear_as_top_level_entries()
    {
        string folder = ShareHost.NewFolder();
        string file = ShareHost.Write(folder, "a/report.pdf", "%PDF"u8.ToArray());
        ShareHost.Write(folder, "b/photos/one.jpg", [0xFF, 0xD8]);
        ShareHost.Write(folder, "c/photos/two.jpg", [0xFF, 0xD8, 0xFF]);
        var shared = new SharedFiles([file, Path.Join(folder, "b/photos"), Path.Join(folder, "c/photos")]);
        Assert.Equal(["photos", "photos (2)", "report.pdf"], shared.TopLevelNames);
        await using var host = ShareHost.Start(folder, shared);
        var (_, listing, _) = await Curl.RunAsync("-s", host.Url("/"));
        Assert.Contains("<a href=\"photos/\">", listing, StringComparison.Ordinal);
        Assert.Contains("<a href=\"photos%20%282%29/\">", listing, StringComparison.Ordinal);
        Assert.Contains("<a href=\"report.pdf\">", listing, StringComparison.Ordinal);
        Assert.Equal("200 application/pdf", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code} %{content_type}", host.Url("/report.pdf"))).Output);
        Assert.Equal("200 3", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code} %{size_download}", host.Url("/photos%20%282%29/two.jpg"))).Output);
        Assert.Equal("404", (await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", host.Url("/a/report.pdf"))).Output);
    }

    [Fact]
    public async Task A_read_only_share_refuses_uploads()
    {
        string source = ShareHost.Write(Downloads, "upload.txt", "x"u8.ToArray());
        var (_, written, _) = await Curl.RunAsync("-s", "-o", "/dev/null", "-w", "%{http_code}", "-T", source, _host.Url("/"));
        Assert.Equal("405", written);
        Assert.False(File.Exists(Path.Join(Shared, "upload.txt")));
    }

    [Fact]
    public async Task No_file_stays_open_after_downloads_that_were_cut_off()
    {
        // Open files are counted from /proc.
        if (!OperatingSystem.IsLinux()) return;
        for (int i = 0; i < 20; i++)
        {
            using var socket = new Socket(SocketType.Stream, ProtocolType.Tcp);
            await socket.ConnectAsync(_host.Listener.LocalEndPoint);
            await socket.SendAsync("GET /big.bin HTTP/1.1\r\nHost: share\r\n\r\n"u8.ToArray());
            // Some of the file, then the client is gone: the server is mid-file with its buffers full.
            await socket.ReceiveAsync(new byte[1000]);
            socket.LingerState = new LingerOption(true, 0);
        }
        await Eventually.WaitUntilAsync(() => OpenFilesUnder(Shared) == 0 && _host.Listener.OpenConnections == 0, TimeSpan.FromSeconds(20), "the shared files to be closed");
    }

    private static string Field(string head, string name) =>
        head.Split("\r\n").Single(line => line.StartsWith(name + ": ", StringComparison.OrdinalIgnoreCase))[(name.Length + 2)..];

    /// <summary>This process's open descriptors that point into <paramref name="folder"/>.</summary>
    internal static int OpenFilesUnder(string folder)
    {
        int open = 0;
        foreach (var descriptor in Directory.EnumerateFileSystemEntries("/proc/self/fd"))
        {
            try
            {
                if (new FileInfo(descriptor).LinkTarget?.StartsWith(folder, StringComparison.Ordinal) == true) open++;
            }
            catch (IOException)
            {
                // Closed while we looked.
            }
        }
        return open;
    }
}
