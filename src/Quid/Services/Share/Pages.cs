using System.Globalization;
using System.Net;
using System.Text;
using System.Text.Json;

namespace Quid.Services.Share;

/// <summary>
/// The pages the share server renders: a folder's listing (HTML for people, JSON for programs),
/// the upload form and its receipt. Every name is escaped for where it goes (HTML text, a link's
/// path segment, a JSON string), so a file called <c>&lt;script&gt;</c> is just a name.
/// </summary>
internal static class Pages
{
    public const string HtmlType = "text/html; charset=utf-8";
    public const string JsonType = "application/json";

    /// <summary>Our pages load nothing and run nothing; styles are inline and forms post back here.</summary>
    public const string PagePolicy = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'";

    private const string Style =
        "body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222;background:#fff}" +
        "h1{font-size:1.3rem;word-break:break-all}table{border-collapse:collapse;width:100%}" +
        "th,td{padding:.3rem .6rem;text-align:left;border-bottom:1px solid #eee}th{font-weight:600}" +
        "th:nth-child(2){text-align:right}td.n{text-align:right;white-space:nowrap;font-variant-numeric:tabular-nums}td.t{white-space:nowrap}" +
        "a{color:#0645ad;text-decoration:none}a:hover{text-decoration:underline}.d{margin-left:.5rem}footer{margin-top:1rem;color:#777}" +
        "form{margin:1.5rem 0;padding:1rem;border:1px dashed #aaa}code{background:#f4f4f4;padding:0 .2rem}" +
        "@media (prefers-color-scheme:dark){body{background:#111;color:#ddd}a{color:#8cf}th,td{border-color:#333}code{background:#222}}";

    /// <summary>Folders first, then files, each by name as people sort: case aside.</summary>
    public static List<ListingEntry> Sorted(IEnumerable<ListingEntry> entries) =>
        [.. entries.OrderBy(e => !e.IsFolder).ThenBy(e => e.Name, StringComparer.OrdinalIgnoreCase).ThenBy(e => e.Name, StringComparer.Ordinal)];

    /// <param name="target">The folder's path; it ends with a slash, so the links can be relative.</param>
    public static byte[] ListingHtml(RequestTarget target, List<ListingEntry> entries)
    {
        var html = Start(target.Segments.Count == 0 ? "/" : string.Join('/', target.Segments) + "/");
        html.Append("<h1>").Append(Breadcrumbs(target.Segments)).Append("</h1>\n");
        Table(html, entries, target.Segments.Count > 0);
        int folders = entries.Count(e => e.IsFolder);
        html.Append("<footer>").Append(Count(folders, "folder")).Append(", ").Append(Count(entries.Count - folders, "file"))
            .Append(". Also as <a href=\"?format=json\">JSON</a>.</footer>\n");
        return End(html);
    }

    public static byte[] ListingJson(RequestTarget target, List<ListingEntry> entries)
    {
        var output = new MemoryStream();
        using (var json = new Utf8JsonWriter(output))
        {
            json.WriteStartObject();
            json.WriteString("path", "/" + string.Concat(target.Segments.Select(s => s + "/")));
            json.WriteStartArray("entries");
            foreach (var entry in entries)
            {
                json.WriteStartObject();
                json.WriteString("name", entry.Name);
                json.WriteString("type", entry.IsFolder ? "folder" : "file");
                if (!entry.IsFolder) json.WriteNumber("size", entry.Length);
                json.WriteString("modified", entry.Modified.ToUniversalTime().ToString("yyyy-MM-dd'T'HH:mm:ss'Z'", CultureInfo.InvariantCulture));
                json.WriteEndObject();
            }
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return output.ToArray();
    }

    /// <summary>The inbox's page: a form for browsers, the curl line for terminals, and the inbox's files if it is listed.</summary>
    /// <param name="host">The Host the client asked for, for the curl line; escaped like any other input.</param>
    public static byte[] UploadForm(string host, long maxUploadBytes, List<ListingEntry>? listing)
    {
        var html = Start("Send files");
        html.Append("<h1>Send files</h1>\n<form method=\"post\" action=\"/\" enctype=\"multipart/form-data\">\n")
            .Append("<input type=\"file\" name=\"file\" multiple required> <button type=\"submit\">Send</button>\n</form>\n")
            .Append(CultureInfo.InvariantCulture, $"<p>Up to {Size(maxUploadBytes)} at a time. From a terminal: <code>curl -T FILE http://{Escape(host)}/</code></p>\n");
        if (listing is not null) Table(html, listing, parentLink: false);
        return End(html);
    }

    public static byte[] Received(IReadOnlyList<string> names)
    {
        var html = Start("Received");
        html.Append("<h1>Received</h1>\n<ul>\n");
        foreach (var name in names) html.Append("<li>").Append(Escape(name)).Append("</li>\n");
        html.Append("</ul>\n<p><a href=\"/\">Send more</a></p>\n");
        return End(html);
    }

    private static void Table(StringBuilder html, List<ListingEntry> entries, bool parentLink)
    {
        html.Append("<table>\n<thead><tr><th>Name</th><th>Size</th><th>Modified (UTC)</th></tr></thead>\n<tbody>\n");
        if (parentLink) html.Append("<tr><td><a href=\"../\">../</a></td><td></td><td></td></tr>\n");
        foreach (var entry in entries)
        {
            string link = Uri.EscapeDataString(entry.Name) + (entry.IsFolder ? "/" : "");
            string name = Escape(entry.Name) + (entry.IsFolder ? "/" : "");
            string modified = entry.Modified.ToUniversalTime().ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture);
            html.Append("<tr><td><a href=\"").Append(link).Append("\">").Append(name).Append("</a>");
            if (entry.IsFolder)
            {
                html.Append("</td><td class=\"n\">—</td>");
            }
            else
            {
                html.Append("<a class=\"d\" href=\"").Append(link).Append("?download=1\" title=\"Download\">⤓</a></td>")
                    .Append(CultureInfo.InvariantCulture, $"<td class=\"n\" title=\"{entry.Length} bytes\">{Size(entry.Length)}</td>");
            }
            html.Append("<td class=\"t\">").Append(modified).Append("</td></tr>\n");
        }
        html.Append("</tbody>\n</table>\n");
    }

    /// <summary>The path as links to each folder along it.</summary>
    private static string Breadcrumbs(IReadOnlyList<string> segments)
    {
        var crumbs = new StringBuilder("<a href=\"/\">/</a>");
        string path = "/";
        foreach (var segment in segments)
        {
            path += Uri.EscapeDataString(segment) + "/";
            crumbs.Append(" <a href=\"").Append(path).Append("\">").Append(Escape(segment)).Append("</a> /");
        }
        return crumbs.ToString();
    }

    private static StringBuilder Start(string title) =>
        new StringBuilder("<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n")
            .Append("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<meta name=\"referrer\" content=\"no-referrer\">\n")
            .Append("<title>").Append(Escape(title)).Append("</title>\n<style>").Append(Style).Append("</style>\n</head>\n<body>\n");

    private static byte[] End(StringBuilder html) => Encoding.UTF8.GetBytes(html.Append("</body>\n</html>\n").ToString());

    private static string Escape(string text) => WebUtility.HtmlEncode(text);

    private static string Count(int count, string what) => count == 1 ? $"1 {what}" : $"{count} {what}s";

    internal static string Size(long bytes)
    {
        if (bytes < 1024) return $"{bytes} B";
        string[] units = ["KiB", "MiB", "GiB", "TiB", "PiB"];
        double value = bytes;
        int unit = -1;
        while (value >= 1024 && unit < units.Length - 1)
        {
            value /= 1024;
            unit++;
        }
        return value.ToString(value < 10 ? "0.#" : "0", CultureInfo.InvariantCulture) + " " + units[unit];
    }
}
