using System.Net;
using System.Security.Cryptography;
using Quid.Wire;

namespace Quid.Links.PortMapping;

/// <summary>Which protocol the gateway answered.</summary>
public enum MappingProtocol { Pcp, NatPmp }

/// <summary>Where the mapper is: asking, holding a mapping, waiting to ask again after a failure, deleting, or done.</summary>
public enum MapperState { Idle, Mapping, Mapped, Failed, Deleting, Stopped }

/// <summary>A port the gateway forwards to our listener: the outside address and port, and until when.</summary>
public sealed record Mapping(IPEndPoint External, MappingProtocol Protocol, TimeSpan Lifetime, DateTimeOffset Obtained)
{
    /// <summary>A gateway that grants seconds does not get a renewal every half second.</summary>
    public static readonly TimeSpan MinRenewal = TimeSpan.FromSeconds(30);

    public DateTimeOffset Expires => Obtained + Lifetime;
    /// <summary>Renewed half way to expiry, as both RFCs say, but never sooner than <see cref="MinRenewal"/>.</summary>
    public DateTimeOffset RenewAt => Obtained + (Lifetime / 2 > MinRenewal ? Lifetime / 2 : MinRenewal);
}

/// <summary>What the host does after a step: send these datagrams to the gateway, wake at this time, and tell what happened.</summary>
/// <param name="Obtained">A mapping is new, or its outside address or port changed: advertise it.</param>
/// <param name="Failure">No mapping, and why: stop advertising one.</param>
public sealed record MapperStep(IReadOnlyList<byte[]> Send, DateTimeOffset? WakeAt, Mapping? Obtained = null, string? Failure = null);

public sealed record PortMapperOptions
{
    /// <summary>What we ask for; the gateway may give less (RFC 6886 recommends two hours).</summary>
    public TimeSpan RequestedLifetime { get; init; } = TimeSpan.FromHours(2);
    /// <summary>The first retransmission's wait; each one after doubles it (RFC 6886 §3.1).</summary>
    public TimeSpan InitialTimeout { get; init; } = TimeSpan.FromMilliseconds(250);
    /// <summary>PCP tries before NAT-PMP is tried: a gateway that ignores PCP costs about 4 s.</summary>
    public int PcpTries { get; init; } = 4;
    /// <summary>NAT-PMP tries before giving up: 9, as RFC 6886 §3.1 says (the ninth is sent 64 s after the first).</summary>
    public int NatPmpTries { get; init; } = 9;
    /// <summary>Tries of a delete on stop, which is best effort: the mapping expires anyway.</summary>
    public int DeleteTries { get; init; } = 3;
    /// <summary>After a failure, the whole negotiation starts again this much later (a router may have rebooted or been configured).</summary>
    public TimeSpan RetryAfter { get; init; } = TimeSpan.FromMinutes(10);
}

/// <summary>
/// Asks a NAT gateway to forward an outside TCP port to our listener, sans-IO: each call returns
/// the datagrams to send to the gateway's port 5351 and when to wake next; time comes from a
/// <see cref="TimeProvider"/>. PCP is asked first (RFC 6887 §9: the highest version first); a
/// NAT-PMP server answers it with UNSUPP_VERSION in NAT-PMP's format, and a gateway that does
/// not answer PCP at all is asked with NAT-PMP next. Retransmissions start at 250 ms and double,
/// a bounded number of times. A mapping is renewed half way to its expiry, and deleted on stop.
/// </summary>
/// <remarks>Not thread-safe: its host calls it from one thread at a time.</remarks>
public sealed class PortMapper
{
    private readonly IPAddress _client;
    private readonly ushort _internalPort;
    private readonly TimeProvider _time;
    private readonly PortMapperOptions _options;
    /// <summary>One nonce for the mapper's life: renewals and the delete must name the mapping they mean (RFC 6887 §11.1).</summary>
    private readonly byte[] _nonce = RandomNumberGenerator.GetBytes(Pcp.NonceSize);
    private MappingProtocol _protocol;
    private bool _askingAddress;
    private IPAddress? _natPmpAddress;
    private byte[]? _request;
    private int _tries;
    private int _maxTries;
    private DateTimeOffset _nextSend;

    /// <param name="client">Our address as the gateway sees it: the source address of the datagrams (PCP puts it in the request).</param>
    /// <param name="internalPort">The listener's port, which is also the external port we suggest.</param>
    public PortMapper(IPAddress client, ushort internalPort, TimeProvider time, PortMapperOptions? options = null)
    {
        _client = client;
        _internalPort = internalPort;
        _time = time;
        _options = options ?? new PortMapperOptions();
    }

    public MapperState State { get; private set; } = MapperState.Idle;
    /// <summary>The mapping held now, if any.</summary>
    public Mapping? Current { get; private set; }
    /// <summary>Why the last attempt failed, while no mapping is held.</summary>
    public string? Failure { get; private set; }

    private DateTimeOffset Now => _time.GetUtcNow();

    /// <summary>Starts asking for the mapping, with PCP.</summary>
    public MapperStep Start()
    {
        if (State != MapperState.Idle) throw new InvalidOperationException($"The mapper has started already ({State}).");
        return Begin();
    }

    /// <summary>A datagram from the gateway. One that is not an answer to what we asked is ignored, as both RFCs say.</summary>
    public MapperStep Receive(ReadOnlySpan<byte> datagram)
    {
        try
        {
            return State switch
            {
                MapperState.Mapping or MapperState.Mapped when _request is not null => _protocol == MappingProtocol.Pcp ? ReceivePcp(datagram) : ReceiveNatPmp(datagram),
                MapperState.Deleting => ReceiveDeleted(datagram),
                _ => Wait(),
            };
        }
        catch (WireException)
        {
            return Wait();
        }
    }

    /// <summary>The time asked for has come (or any time: only what is due is done).</summary>
    public MapperStep Wake()
    {
        var now = Now;
        switch (State)
        {
            case MapperState.Failed when now >= _nextSend:
                return Begin();
            case MapperState.Mapped when _request is null && now >= Current!.RenewAt:
                // Renewed as it was obtained: PCP with the same nonce and the port we hold; NAT-PMP
                // asks the address again first, since only that answer would tell it changed.
                if (_protocol == MappingProtocol.NatPmp) return AskNatPmpAddress();
                Send(PcpRequest(Current.External.Port, Current.External.Address, Lifetime), _options.PcpTries);
                return new MapperStep([_request!], _nextSend);
            case MapperState.Mapped when _request is not null && now >= Current!.Expires:
                return Fail($"the gateway did not answer the renewal, and the mapping of {Current.External} expired");
            case MapperState.Mapping or MapperState.Mapped or MapperState.Deleting when _request is not null && now >= _nextSend:
                return Retransmit();
        }
        return Wait();
    }

    /// <summary>Deletes the mapping held (lifetime 0), best effort; with none held, stops at once.</summary>
    public MapperStep Stop()
    {
        if (Current is null || State is MapperState.Deleting or MapperState.Stopped)
        {
            if (State != MapperState.Deleting) State = MapperState.Stopped;
            return Wait();
        }
        State = MapperState.Deleting;
        Send(_protocol == MappingProtocol.Pcp ? PcpRequest(0, null, 0) : NatPmp.MapTcpRequest(_internalPort, 0, 0), _options.DeleteTries);
        return new MapperStep([_request!], _nextSend);
    }

    private uint Lifetime => (uint)_options.RequestedLifetime.TotalSeconds;

    private MapperStep Begin()
    {
        State = MapperState.Mapping;
        _protocol = MappingProtocol.Pcp;
        Send(PcpRequest(_internalPort, null, Lifetime), _options.PcpTries);
        return new MapperStep([_request!], _nextSend);
    }

    private byte[] PcpRequest(int suggestedPort, IPAddress? suggestedAddress, uint lifetime) =>
        Pcp.MapRequest(_nonce, _client, _internalPort, (ushort)suggestedPort, suggestedAddress, lifetime);

    /// <summary>NAT-PMP's mapping response has no address, so the external address is asked first.</summary>
    private MapperStep BeginNatPmp()
    {
        _protocol = MappingProtocol.NatPmp;
        return AskNatPmpAddress();
    }

    private MapperStep AskNatPmpAddress()
    {
        _askingAddress = true;
        Send(NatPmp.ExternalAddressRequest(), _options.NatPmpTries);
        return new MapperStep([_request!], _nextSend);
    }

    private void Send(byte[] request, int maxTries)
    {
        _request = request;
        _tries = 1;
        _maxTries = maxTries;
        _nextSend = Now + _options.InitialTimeout;
    }

    private MapperStep Retransmit()
    {
        if (_tries < _maxTries)
        {
            _nextSend = Now + _options.InitialTimeout * (1 << _tries);
            _tries++;
            return new MapperStep([_request!], _nextSend);
        }
        return State switch
        {
            MapperState.Deleting => Stopped(),
            MapperState.Mapping when _protocol == MappingProtocol.Pcp => BeginNatPmp(),
            MapperState.Mapping => Fail($"the gateway answered neither PCP nor NAT-PMP ({_options.PcpTries} + {_options.NatPmpTries} tries)"),
            // A renewal went unanswered: the mapping holds until it expires (a late answer still renews it), then it is given up.
            _ => KeepUntilExpiry(),
        };
    }

    private MapperStep KeepUntilExpiry()
    {
        _nextSend = Current!.Expires;
        _maxTries = _tries;
        return new MapperStep([], _nextSend);
    }

    private MapperStep ReceivePcp(ReadOnlySpan<byte> datagram)
    {
        if (datagram.Length > 0 && datagram[0] == NatPmp.Version)
        {
            // A NAT-PMP-only gateway's answer to a PCP request (RFC 6887 §9).
            var header = NatPmp.DecodeHeader(datagram);
            return header.Result == NatPmpResult.UnsupportedVersion && State == MapperState.Mapping ? BeginNatPmp() : Wait();
        }
        var response = Pcp.DecodeMapResponse(datagram, _nonce);
        if (response.Result != PcpResult.Success)
            return Fail($"the gateway refused the mapping: PCP {Describe(response.Result)}");
        if (response.LifetimeSeconds == 0 || response.ExternalPort == 0)
            return Fail("the gateway answered PCP with no port or no lifetime");
        return Mapped(new IPEndPoint(response.ExternalAddress, response.ExternalPort), response.LifetimeSeconds);
    }

    private MapperStep ReceiveNatPmp(ReadOnlySpan<byte> datagram)
    {
        if (_askingAddress)
        {
            var address = NatPmp.DecodeExternalAddress(datagram);
            if (address.Result != NatPmpResult.Success) return Fail($"the gateway has no external address: NAT-PMP {Describe(address.Result)}");
            _natPmpAddress = address.Address;
            _askingAddress = false;
            Send(NatPmp.MapTcpRequest(_internalPort, (ushort)(Current?.External.Port ?? _internalPort), Lifetime), _options.NatPmpTries);
            return new MapperStep([_request!], _nextSend);
        }
        var response = NatPmp.DecodeMapTcp(datagram);
        if (response.Result != NatPmpResult.Success) return Fail($"the gateway refused the mapping: NAT-PMP {Describe(response.Result)}");
        if (response.InternalPort != _internalPort) return Wait();
        if (response.LifetimeSeconds == 0 || response.ExternalPort == 0) return Fail("the gateway answered NAT-PMP with no port or no lifetime");
        return Mapped(new IPEndPoint(_natPmpAddress!, response.ExternalPort), response.LifetimeSeconds);
    }

    private MapperStep ReceiveDeleted(ReadOnlySpan<byte> datagram)
    {
        if (_protocol == MappingProtocol.Pcp) Pcp.DecodeMapResponse(datagram, _nonce);
        else if (NatPmp.DecodeMapTcp(datagram).InternalPort != _internalPort) return Wait();
        return Stopped();
    }

    private MapperStep Mapped(IPEndPoint external, uint lifetimeSeconds)
    {
        bool changed = Current is null || !Current.External.Equals(external);
        Current = new Mapping(external, _protocol, TimeSpan.FromSeconds(lifetimeSeconds), Now);
        State = MapperState.Mapped;
        Failure = null;
        _request = null;
        return new MapperStep([], Current.RenewAt, changed ? Current : null);
    }

    private MapperStep Fail(string reason)
    {
        Current = null;
        Failure = reason;
        State = MapperState.Failed;
        _request = null;
        _nextSend = Now + _options.RetryAfter;
        return new MapperStep([], _nextSend, Failure: reason);
    }

    private MapperStep Stopped()
    {
        State = MapperState.Stopped;
        Current = null;
        _request = null;
        return new MapperStep([], null);
    }

    /// <summary>Nothing to send: wake when something is due.</summary>
    private MapperStep Wait() => new([], State switch
    {
        MapperState.Mapped when _request is null => Current!.RenewAt,
        MapperState.Mapping or MapperState.Mapped or MapperState.Deleting or MapperState.Failed => _nextSend,
        _ => null,
    });

    private static string Describe(PcpResult result) => Enum.IsDefined(result) ? result.ToString() : $"result {(byte)result}";
    private static string Describe(NatPmpResult result) => Enum.IsDefined(result) ? result.ToString() : $"result {(ushort)result}";
}
