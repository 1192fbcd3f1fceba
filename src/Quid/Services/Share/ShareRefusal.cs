namespace Quid.Services.Share;

/// <summary>
/// A request the server answers with an error status and then closes the connection, since what
/// the client sent after it (an unread body, say) can no longer be told apart from a next request.
/// </summary>
internal sealed class ShareRefusal(int status, string message) : Exception(message)
{
    public int Status { get; } = status;
}
