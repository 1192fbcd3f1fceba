using System.Net;
using Quid.Circuits;
using Quid.Proxy.Socks;
using Quid.Wire;

namespace Quid.Proxy;

/// <summary>
/// Opens a stream to a destination through the network; the node decides which circuit.
/// <paramref name="isolation"/> identifies the application's credentials: streams from different
/// credentials never share a circuit. The target's host stays a name: the exit resolves it.
/// </summary>
public delegate Task<RelayStream> StreamOpener(StreamTarget target, SocksAuth isolation, CancellationToken cancellationToken);

/// <summary>Resolves a name at an exit, for Tor's SOCKS RESOLVE extension; never with a local resolver.</summary>
public delegate Task<IPAddress[]> ExitResolver(string host, SocksAuth isolation, CancellationToken cancellationToken);
