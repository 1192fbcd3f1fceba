using Quid.Proxy.Socks;
using static Quid.Tests.Proxy.SocksTestDriver;

namespace Quid.Tests.Proxy;

public class SocksServerHandshakeTests
{
    public static TheoryData<string> Conversations => SocksConversations.Names;

    private static readonly byte[] EarlyData = A("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");

    [Theory]
    [MemberData(nameof(Conversations))]
    public void RealClientBytesYieldExactRepliesAndRequest(string name)
    {
        var c = SocksConversations.All[name];
        var server = c.NewServer();
        var replies = "";
        for (int i = 0; i < c.Messages.Length; i++)
        {
            SocksStep step = server.Step(c.Messages[i]);
            Assert.Equal(c.Messages[i].Length, step.Consumed);
            replies += Hex(step.Reply.Span);
            Assert.Equal(i < c.Messages.Length - 1 ? SocksStepKind.Reply : SocksStepKind.Finished, step.Kind);
            if (step.Kind == SocksStepKind.Finished)
                Assert.Equal(c.Request, step.Request);
        }
        Assert.Equal(c.Replies, replies);
    }

    [Theory]
    [MemberData(nameof(Conversations))]
    public void EveryProperPrefixOfEveryMessageNeedsMore(string name)
    {
        var c = SocksConversations.All[name];
        for (int i = 0; i < c.Messages.Length; i++)
        {
            for (int length = 0; length < c.Messages[i].Length; length++)
            {
                var server = c.NewServer();
                for (int j = 0; j < i; j++)
                    Assert.Equal(SocksStepKind.Reply, server.Step(c.Messages[j]).Kind);
                SocksStep step = server.Step(c.Messages[i].AsSpan(0, length));
                AssertValid(step, length);
                Assert.Equal(SocksStepKind.NeedMore, step.Kind);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Conversations))]
    public void SplittingAtAnyByteBoundaryChangesNothing(string name)
    {
        var c = SocksConversations.All[name];
        byte[] all = c.AllBytes;
        var expected = new SocksTranscript(c.Replies, SocksStepKind.Finished, c.Request, null, "");
        Assert.Equal(expected, Run(c.NewServer(), all));
        for (int split = 0; split <= all.Length; split++)
            Assert.Equal(expected, Run(c.NewServer(), all[..split], all[split..]));
        Assert.Equal(expected, Run(c.NewServer(), [.. all.Select(b => new[] { b })]));
    }

    [Theory]
    [MemberData(nameof(Conversations))]
    public void PipelinedEarlyDataIsLeftUnconsumed(string name)
    {
        var c = SocksConversations.All[name];
        var expected = new SocksTranscript(c.Replies, SocksStepKind.Finished, c.Request, null, Hex(EarlyData));
        Assert.Equal(expected, Run(c.NewServer(), [.. c.AllBytes, .. EarlyData]));

        // The finishing step itself reports the exact request length.
        var server = c.NewServer();
        foreach (byte[] message in c.Messages[..^1])
            server.Step(message);
        byte[] last = c.Messages[^1];
        SocksStep step = server.Step([.. last, .. EarlyData]);
        Assert.Equal(SocksStepKind.Finished, step.Kind);
        Assert.Equal(last.Length, step.Consumed);
    }

    [Fact]
    public void LargestMessageIsMaxMessageSize()
    {
        Assert.Equal(SocksServerHandshake.MaxMessageSize, SocksConversations.All["largest socks4a"].Messages[0].Length);
        Assert.All(SocksConversations.All.Values.SelectMany(c => c.Messages), m => Assert.InRange(m.Length, 1, SocksServerHandshake.MaxMessageSize));
    }

    [Theory]
    [InlineData(true, true, "05 01 00", "0500")]
    [InlineData(true, true, "05 02 00 02", "0502")]
    [InlineData(true, true, "05 02 02 00", "0502")]
    [InlineData(true, true, "05 03 00 01 02", "0502")]
    [InlineData(true, false, "05 02 00 02", "0500")]
    [InlineData(false, true, "05 02 00 02", "0502")]
    public void MethodNegotiationPrefersCredentials(bool noAuth, bool userPass, string offer, string reply)
    {
        SocksStep step = new SocksServerHandshake(noAuth, userPass).Step(H(offer));
        Assert.Equal(SocksStepKind.Reply, step.Kind);
        Assert.Equal(reply, Hex(step.Reply.Span));
    }

    [Theory]
    // Not SOCKS at all: no reply, just close.
    [InlineData(true, true, "474554202f20485454502f312e310d0a", SocksErrorKind.UnknownVersion, "")]
    [InlineData(true, true, "00", SocksErrorKind.UnknownVersion, "")]
    [InlineData(true, true, "06", SocksErrorKind.UnknownVersion, "")]
    // Method negotiation.
    [InlineData(true, false, "05 01 02", SocksErrorKind.NoAcceptableMethod, "05FF")]
    [InlineData(false, true, "05 01 00", SocksErrorKind.NoAcceptableMethod, "05FF")]
    [InlineData(true, true, "05 00", SocksErrorKind.NoAcceptableMethod, "05FF")]
    [InlineData(true, true, "05 02 01 03", SocksErrorKind.NoAcceptableMethod, "05FF")]
    // Username/password sub-negotiation.
    [InlineData(true, true, "05 01 02  05", SocksErrorKind.BadAuthVersion, "0502" + "0101")]
    [InlineData(true, true, "05 01 02  00", SocksErrorKind.BadAuthVersion, "0502" + "0101")]
    [InlineData(true, true, "05 01 02  01 00 00", SocksErrorKind.BadField, "0502" + "0101")]
    // Request.
    [InlineData(true, true, "05 01 00  04 01 00 01 5d b8 d8 22 00 50", SocksErrorKind.BadField, "0500" + "05010001000000000000")]
    [InlineData(true, true, "05 01 00  05 00", SocksErrorKind.UnsupportedCommand, "0500" + "05070001000000000000")]
    [InlineData(true, true, "05 01 00  05 04", SocksErrorKind.UnsupportedCommand, "0500" + "05070001000000000000")]
    [InlineData(true, true, "05 01 00  05 f2 00 01 5d b8 d8 22 00 50", SocksErrorKind.UnsupportedCommand, "0500" + "05070001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 00", SocksErrorKind.UnsupportedAddressType, "0500" + "05080001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 02 5d b8 d8 22 00 50", SocksErrorKind.UnsupportedAddressType, "0500" + "05080001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 05", SocksErrorKind.UnsupportedAddressType, "0500" + "05080001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 03 00", SocksErrorKind.BadHostName, "0500" + "05010001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 03 03 61 00 62 00 50", SocksErrorKind.BadHostName, "0500" + "05010001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 03 03 61 20 62 00 50", SocksErrorKind.BadHostName, "0500" + "05010001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 03 03 61 0a 62 00 50", SocksErrorKind.BadHostName, "0500" + "05010001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 03 03 61 7f 62 00 50", SocksErrorKind.BadHostName, "0500" + "05010001000000000000")]
    [InlineData(true, true, "05 01 00  05 01 00 03 03 c3 a9 62 00 50", SocksErrorKind.BadHostName, "0500" + "05010001000000000000")]
    // SOCKS4: every failure is 5B.
    [InlineData(true, true, "04 03", SocksErrorKind.UnsupportedCommand, "005B000000000000")]
    [InlineData(true, true, "04 f0 00 50 00 00 00 01 00 61 00", SocksErrorKind.UnsupportedCommand, "005B000000000000")]
    [InlineData(true, true, "04 01 00 50 00 00 00 01 00 00", SocksErrorKind.BadHostName, "005B000000000000")]
    [InlineData(true, true, "04 01 00 50 00 00 00 01 00 61 0a 00", SocksErrorKind.BadHostName, "005B000000000000")]
    [InlineData(true, true, "04 01 00 50 00 00 00 01 00 c3 a9 00", SocksErrorKind.BadHostName, "005B000000000000")]
    public void MalformedInputFailsWithTypedErrorAndProperReply(bool noAuth, bool userPass, string input, SocksErrorKind kind, string replies)
    {
        SocksTranscript result = Run(new SocksServerHandshake(noAuth, userPass), H(input));
        Assert.Equal(SocksStepKind.Failed, result.Final);
        Assert.Equal(kind, result.Error!.Kind);
        Assert.Equal(replies, result.Replies);
    }

    [Fact]
    public void FailsAsSoonAsTheBytesSoFarAreInvalid()
    {
        // Nobody should have to wait for the rest of a message that is already wrong.
        Assert.Equal(SocksStepKind.Failed, new SocksServerHandshake().Step(H("47")).Kind);
        Assert.Equal(SocksStepKind.Failed, Run(new SocksServerHandshake(), H("05 01 00  05 09")).Final);
        Assert.Equal(SocksStepKind.Failed, Run(new SocksServerHandshake(), H("05 01 00  05 01 00 09")).Final);
        Assert.Equal(SocksStepKind.Failed, new SocksServerHandshake().Step(H("04 09")).Kind);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Socks4UserIdLongerThan255BytesIsOversized(bool withNulAfter)
    {
        byte[] input = [.. H("04 01 00 50 5d b8 d8 22"), .. SocksConversations.Filled('u', 256), .. (withNulAfter ? new byte[] { 0 } : [])];
        SocksStep step = new SocksServerHandshake().Step(input);
        Assert.Equal(SocksStepKind.Failed, step.Kind);
        Assert.Equal(SocksErrorKind.Oversized, step.Error!.Kind);
        Assert.Equal("005B000000000000", Hex(step.Reply.Span));

        // One byte fewer is still a prefix of a valid message.
        Assert.Equal(SocksStepKind.NeedMore, new SocksServerHandshake().Step(input.AsSpan(0, 8 + 255)).Kind);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Socks4aHostNameLongerThan255BytesIsOversized(bool withNulAfter)
    {
        byte[] input = [.. H("04 01 00 50 00 00 00 01 00"), .. SocksConversations.Filled('h', 256), .. (withNulAfter ? new byte[] { 0 } : [])];
        SocksStep step = new SocksServerHandshake().Step(input);
        Assert.Equal(SocksStepKind.Failed, step.Kind);
        Assert.Equal(SocksErrorKind.Oversized, step.Error!.Kind);
        Assert.Equal("005B000000000000", Hex(step.Reply.Span));
    }

    [Fact]
    public void EmptyInputNeedsMoreInEveryState()
    {
        var server = new SocksServerHandshake();
        Assert.Equal(SocksStepKind.NeedMore, server.Step([]).Kind);
        Assert.Equal(SocksStepKind.Reply, server.Step(H("05 01 02")).Kind);
        Assert.Equal(SocksStepKind.NeedMore, server.Step([]).Kind);
        Assert.Equal(SocksStepKind.Reply, server.Step(H("01 01 61 00")).Kind);
        Assert.Equal(SocksStepKind.NeedMore, server.Step([]).Kind);
    }

    [Fact]
    public void StepAfterFinishedFails()
    {
        var server = new SocksServerHandshake();
        Assert.Equal(SocksStepKind.Finished, server.Step(H("04 01 00 50 5d b8 d8 22 00")).Kind);
        foreach (byte[] input in new[] { H("04 01 00 50 5d b8 d8 22 00"), H("05 01 00"), [] })
        {
            SocksStep step = server.Step(input);
            Assert.Equal(SocksStepKind.Failed, step.Kind);
            Assert.Equal(SocksErrorKind.HandshakeOver, step.Error!.Kind);
            Assert.True(step.Reply.IsEmpty);
        }
    }

    [Fact]
    public void StepAfterFailedFails()
    {
        var server = new SocksServerHandshake(acceptNoAuth: false);
        Assert.Equal(SocksErrorKind.NoAcceptableMethod, server.Step(H("05 01 00")).Error!.Kind);
        SocksStep step = server.Step(H("05 01 02"));
        Assert.Equal(SocksStepKind.Failed, step.Kind);
        Assert.Equal(SocksErrorKind.HandshakeOver, step.Error!.Kind);
    }

    [Fact]
    public void RefusingEveryMethodIsAConfigurationError() =>
        Assert.Throws<ArgumentException>(() => new SocksServerHandshake(acceptNoAuth: false, acceptUsernamePassword: false));

    [Fact]
    public void RequestsWithEqualCredentialsAreEqualKeys()
    {
        // Same user/pass through two connections: same isolation key, even as hash keys.
        SocksRequest a = Run(new SocksServerHandshake(), SocksConversations.All["curl socks5-hostname user:pass"].AllBytes).Request!;
        SocksRequest b = Run(new SocksServerHandshake(), SocksConversations.All["curl socks5-hostname user:pass"].AllBytes).Request!;
        Assert.NotSame(a, b);
        Assert.Equal(a, b);
        Assert.Equal(a.Auth.GetHashCode(), b.Auth.GetHashCode());
        Assert.Single(new HashSet<SocksAuth> { a.Auth, b.Auth });
    }

    [Fact]
    public void CredentialsCompareByKindAndBytes()
    {
        SocksAuth userPass = SocksAuth.FromUsernamePassword(A("ab"), A("c"));
        Assert.Equal(userPass, SocksAuth.FromUsernamePassword(A("ab"), A("c")));
        Assert.NotEqual(userPass, SocksAuth.FromUsernamePassword(A("a"), A("bc")));
        Assert.NotEqual(userPass, SocksAuth.FromUsernamePassword(A("ab"), A("d")));
        Assert.NotEqual(SocksAuth.FromSocks4UserId(A("ab")), SocksAuth.FromUsernamePassword(A("ab"), []));
        Assert.Equal(SocksAuth.None, SocksAuth.FromSocks4UserId([]));
        Assert.NotEqual(SocksAuth.None, SocksAuth.FromUsernamePassword(A("x"), []));
    }

    [Fact]
    public void CredentialsCannotChangeUnderAKey()
    {
        byte[] user = A("user");
        SocksAuth auth = SocksAuth.FromUsernamePassword(user, A("pass"));
        user[0] = (byte)'X';
        Assert.Equal(SocksAuth.FromUsernamePassword(A("user"), A("pass")), auth);
    }

    [Fact]
    public void CredentialsStayOutOfToString()
    {
        SocksRequest request = Run(new SocksServerHandshake(), SocksConversations.All["curl socks5-hostname user:pass"].AllBytes).Request!;
        string text = request.ToString();
        Assert.Contains("example.com:80", text, StringComparison.Ordinal);
        Assert.DoesNotContain("pass", text, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("")]
    [InlineData("a b")]
    [InlineData("a\0b")]
    [InlineData("caf\u00e9.example")]
    public void TargetRejectsInvalidHostNames(string name) =>
        Assert.Throws<ArgumentException>(() => new SocksTarget(name, 80));

    [Fact]
    public void TargetRejectsHostNamesLongerThan255()
    {
        Assert.Equal(new string('h', 255), new SocksTarget(new string('h', 255), 80).HostName);
        Assert.Throws<ArgumentException>(() => new SocksTarget(new string('h', 256), 80));
    }
}
