using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using Quid.Node.Configuration;

namespace Quid.Node.Control;

/// <summary>No running node answers: it is not running, its control API is off, or the cookie cannot be read.</summary>
public sealed class ControlUnavailableException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>The node understood a request to change something and refused it; the message says what to change.</summary>
public sealed class ControlRefusedException(int status, string message) : Exception(message)
{
    /// <summary>The HTTP status: 400 for a request to change, 404 for no such service, 409 for a name taken.</summary>
    public int Status { get; } = status;
}

/// <summary>
/// Talks to a running node's control API, as the CLI does: it finds the address in the data
/// directory (where the node wrote the one it got) or in the configuration, and proves itself
/// with the cookie beside it.
/// </summary>
public sealed class ControlClient : IDisposable
{
    private readonly HttpClient _http;

    public ControlClient(IPEndPoint endPoint, byte[] cookie)
    {
        EndPoint = endPoint;
        Cookie = cookie;
        // Never through a proxy from the environment: the API is on loopback, and the cookie must not travel.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, ConnectTimeout = TimeSpan.FromSeconds(5) })
        {
            BaseAddress = new Uri($"http://{endPoint}/"),
            // Each request has its own: publishing a service waits for the network.
            Timeout = Timeout.InfiniteTimeSpan,
        };
        _http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", ControlCookie.Hex(cookie));
    }

    /// <summary>How long a request may take, answer and all; a node that takes longer is stuck or overwhelmed.</summary>
    public static readonly TimeSpan Patience = TimeSpan.FromSeconds(10);

    /// <summary>How long a request to publish may take: the node waits up to 30 s for an introduction point before it answers.</summary>
    public static readonly TimeSpan PublishPatience = TimeSpan.FromSeconds(50);

    public IPEndPoint EndPoint { get; }
    public byte[] Cookie { get; }

    /// <summary>A client for the node that runs with these settings' data directory.</summary>
    public static ControlClient For(NodeSettings settings)
    {
        string directory = settings.DataDirectory;
        IPEndPoint? endPoint = settings.Control;
        string written = Path.Combine(directory, ControlCookie.EndPointFileName);
        try
        {
            if (File.Exists(written) && IPEndPoint.TryParse(File.ReadAllText(written, Encoding.ASCII).Trim(), out var actual)) endPoint = actual;
            if (endPoint is null)
                throw new ControlUnavailableException("The control API is off (control = off), so there is no running node to ask.");
            if (!File.Exists(ControlCookie.PathIn(directory)))
                throw new ControlUnavailableException($"No node has run with data directory {directory}: there is no {ControlCookie.FileName} (use --data-dir).");
            return new ControlClient(endPoint, ControlCookie.Read(directory));
        }
        catch (UnauthorizedAccessException e)
        {
            throw new ControlUnavailableException($"Cannot read {ControlCookie.PathIn(directory)}: run this as the node's user (for the system service: sudo -u quid quid …).", e);
        }
    }

    /// <summary>The answer to <paramref name="path"/>, read as <paramref name="type"/>: one of <see cref="ControlJson"/>'s.</summary>
    /// <exception cref="ControlUnavailableException">No answer, or not one that can be read; the message says what to check.</exception>
    public Task<T> GetAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancellationToken = default) =>
        AskAsync(() => new HttpRequestMessage(HttpMethod.Get, path.TrimStart('/')), path, type, Patience, cancellationToken);

    /// <summary>POSTs <paramref name="body"/> to <paramref name="path"/> and reads the answer as <paramref name="type"/>.</summary>
    /// <exception cref="ControlRefusedException">The node refused the request; the message says why.</exception>
    /// <exception cref="ControlUnavailableException">No answer, or not one that can be read.</exception>
    public Task<T> PostAsync<TBody, T>(string path, TBody body, JsonTypeInfo<TBody> bodyType, JsonTypeInfo<T> type, TimeSpan patience, CancellationToken cancellationToken = default) =>
        AskAsync(() => new HttpRequestMessage(HttpMethod.Post, path.TrimStart('/')) { Content = JsonContent.Create(body, bodyType) }, path, type, patience, cancellationToken);

    /// <summary>
    /// The answer to <paramref name="path"/>, where a 4xx is the user's to fix (an entry the node
    /// does not have, say) rather than a sign that no node answers: it is thrown as a refusal.
    /// </summary>
    /// <exception cref="ControlRefusedException">The node refused; the message says why.</exception>
    /// <exception cref="ControlUnavailableException">No answer, or not one that can be read.</exception>
    public Task<T> GetRefusableAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancellationToken = default) =>
        AskAsync(() => new HttpRequestMessage(HttpMethod.Get, path.TrimStart('/')), path, type, Patience, cancellationToken, refusable: true);

    /// <summary>POSTs nothing to <paramref name="path"/> (its query says it all) and reads the answer as <paramref name="type"/>.</summary>
    /// <exception cref="ControlRefusedException">The node refused the request; the message says why.</exception>
    /// <exception cref="ControlUnavailableException">No answer, or not one that can be read.</exception>
    public Task<T> PostAsync<T>(string path, JsonTypeInfo<T> type, CancellationToken cancellationToken = default) =>
        PostAsync(path, type, Patience, cancellationToken);

    /// <summary>As <see cref="PostAsync{T}(string, JsonTypeInfo{T}, CancellationToken)"/>, waiting up to <paramref name="patience"/> for the answer.</summary>
    public Task<T> PostAsync<T>(string path, JsonTypeInfo<T> type, TimeSpan patience, CancellationToken cancellationToken = default) =>
        AskAsync(() => new HttpRequestMessage(HttpMethod.Post, path.TrimStart('/')), path, type, patience, cancellationToken);

    /// <summary>
    /// The answer to <paramref name="path"/> once its head has come, its content (a cached body,
    /// bytes of any size) for the caller to read; a 4xx is a refusal, as in <see cref="GetRefusableAsync"/>.
    /// </summary>
    /// <exception cref="ControlRefusedException">The node refused; the message says why.</exception>
    /// <exception cref="ControlUnavailableException">No answer.</exception>
    public Task<HttpResponseMessage> GetContentAsync(string path, CancellationToken cancellationToken = default) => GetContentAsync(path, Patience, cancellationToken);

    /// <summary>As <see cref="GetContentAsync(string, CancellationToken)"/>, waiting up to <paramref name="patience"/> for the head (a stored file, fetched through a circuit first).</summary>
    public async Task<HttpResponseMessage> GetContentAsync(string path, TimeSpan patience, CancellationToken cancellationToken = default)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Get, path.TrimStart('/'));
            return await SendAsync(request, path, patience, cancellationToken, refusable: true, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
        }
        catch (Exception e) when (Unreachable(e, patience, cancellationToken) is { } reason)
        {
            throw new ControlUnavailableException(reason, e);
        }
    }

    /// <summary>DELETEs <paramref name="path"/>.</summary>
    /// <exception cref="ControlRefusedException">The node refused, or has nothing there (404); the message says which.</exception>
    /// <exception cref="ControlUnavailableException">No answer.</exception>
    public Task DeleteAsync(string path, CancellationToken cancellationToken = default) => DeleteAsync(path, Patience, cancellationToken);

    /// <summary>As <see cref="DeleteAsync(string, CancellationToken)"/>, waiting up to <paramref name="wait"/> (a stored file, removed from each host through a circuit).</summary>
    public async Task DeleteAsync(string path, TimeSpan wait, CancellationToken cancellationToken = default)
    {
        try
        {
            using var request = new HttpRequestMessage(HttpMethod.Delete, path.TrimStart('/'));
            using var response = await SendAsync(request, path, wait, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (Unreachable(e, wait, cancellationToken) is { } reason)
        {
            throw new ControlUnavailableException(reason, e);
        }
    }

    private async Task<T> AskAsync<T>(Func<HttpRequestMessage> make, string path, JsonTypeInfo<T> type, TimeSpan patience, CancellationToken cancellationToken,
        bool refusable = false)
    {
        try
        {
            using var request = make();
            using var response = await SendAsync(request, path, patience, cancellationToken, refusable).ConfigureAwait(false);
            using var deadline = Deadline(patience, cancellationToken);
            return await response.Content.ReadFromJsonAsync(type, deadline.Token).ConfigureAwait(false)
                ?? throw new ControlUnavailableException($"The node answered {path} with nothing.");
        }
        catch (JsonException e)
        {
            throw new ControlUnavailableException($"What answers on {EndPoint} is not a Quid node's control API (its answer to {path} is not the JSON expected): check the address in {ControlCookie.EndPointFileName} and that this quid is the node's version.", e);
        }
        catch (Exception e) when (Unreachable(e, patience, cancellationToken) is { } reason)
        {
            throw new ControlUnavailableException(reason, e);
        }
    }

    private static CancellationTokenSource Deadline(TimeSpan patience, CancellationToken cancellationToken)
    {
        var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(patience);
        return deadline;
    }

    /// <summary>What to tell the user when a request failed on the way, as a connection can; null for anything else.</summary>
    private string? Unreachable(Exception e, TimeSpan patience, CancellationToken cancellationToken) => e switch
    {
        HttpRequestException { InnerException: SocketException } => $"No node answers on {EndPoint}: is 'quid run' running with this data directory?",
        // Connected, then hung up on before an answer: a node at its limit of control connections does that.
        HttpRequestException or IOException =>
            $"The node on {EndPoint} closed the connection without answering: it may be at its limit of control connections; try again, and check its log.",
        TaskCanceledException when !cancellationToken.IsCancellationRequested =>
            $"The node on {EndPoint} did not answer within {patience.TotalSeconds:0} s: it may be overloaded or stuck; check its log, or whether something else holds that port.",
        _ => null,
    };

    /// <param name="refusable">A 4xx to a GET is a refusal too, not only one to a request that changes something.</param>
    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, string path, TimeSpan patience, CancellationToken cancellationToken,
        bool refusable = false, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        using var deadline = Deadline(patience, cancellationToken);
        var response = await _http.SendAsync(request, completion, deadline.Token).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.Unauthorized)
        {
            response.Dispose();
            throw new ControlUnavailableException($"The node on {EndPoint} refused the cookie: it belongs to another node or an older start of this one.");
        }
        if (!response.IsSuccessStatusCode)
        {
            string body = await response.Content.ReadAsStringAsync(deadline.Token).ConfigureAwait(false);
            response.Dispose();
            // A request to change something that the node refused says why, in words meant for the user.
            if ((refusable || request.Method != HttpMethod.Get) && (int)response.StatusCode is >= 400 and < 500 && Refusal(body) is { } why)
                throw new ControlRefusedException((int)response.StatusCode, why);
            throw new ControlUnavailableException($"The node on {EndPoint} answered {path} with {(int)response.StatusCode}: {body}");
        }
        return response;
    }

    private static string? Refusal(string body)
    {
        try
        {
            return JsonSerializer.Deserialize(body, ControlJson.Default.ErrorReport)?.Error;
        }
        catch (JsonException)
        {
            return null;
        }
    }

    public void Dispose() => _http.Dispose();
}
