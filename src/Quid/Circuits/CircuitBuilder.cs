using System.Security.Cryptography;
using Microsoft.Extensions.Logging;
using Quid.Crypto;
using Quid.Links;
using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// Builds our own circuits, telescoping: CREATE to the first hop (a neighbour), then EXTEND
/// through the last hop so far for each next one, each with a fresh ntor handshake against the
/// hop's onion key from its signed descriptor.
/// </summary>
public sealed class CircuitBuilder(CircuitTable table, CircuitOptions options, TimeProvider time, ILogger logger)
{
    public CircuitOptions Options => options;

    /// <summary>
    /// Builds a circuit along <paramref name="path"/>, starting on <paramref name="firstHop"/>, the
    /// link to <c>path[0]</c>. Throws <see cref="StreamException"/> if a hop refuses or is silent.
    /// With <paramref name="evenIfFull"/>, a hop extends even where the circuits it carries already
    /// fill the next hop's grant (<see cref="ExtendFailure.Full"/>).
    /// </summary>
    public async Task<Circuit> BuildAsync(ICellPort firstHop, IReadOnlyList<Descriptor> path, object? isolation, CancellationToken cancellationToken, bool evenIfFull = false)
    {
        var circuit = new Circuit(CircuitRole.Origin, table, time) { Isolation = isolation, ExitDescriptor = path[^1], MaxStreams = options.MaxStreamsPerCircuit };
        uint id = table.AttachOutward(circuit, firstHop);
        try
        {
            for (int i = 0; i < path.Count; i++)
            {
                var hop = path[i];
                using var ntor = Ntor.Start(hop.Id, hop.LinkKey);
                // Waiting starts before the request goes, so the timeout runs from the send.
                var waiting = circuit.ExpectReply().WaitAsync(options.BuildTimeout, time, cancellationToken);
                bool sent = i == 0
                    ? CircuitTable.SendCreate(firstHop, id, ntor.Request.ToArray())
                    : circuit.SendRelay(RelayCommand.Extend, 0, Extend(hop.Id, ntor, evenIfFull), early: true);
                if (!sent) throw new StreamException(EndReason.CircuitClosed, "The circuit's first link closed.");
                HopReply reply;
                try
                {
                    reply = await waiting.ConfigureAwait(false);
                }
                catch (TimeoutException)
                {
                    throw new StreamException(EndReason.Timeout, $"{hop.Id.Brief} did not answer within {options.BuildTimeout.TotalSeconds:0} s.") { FailedHop = hop.Id };
                }
                if (reply.Handshake is not { } handshake) throw NotBuilt(path, i, reply.Failure);
                byte[] keys;
                try
                {
                    keys = ntor.Finish(handshake, OnionLayer.KeyMaterialSize);
                }
                catch (CircuitHandshakeException e)
                {
                    throw new StreamException(EndReason.Protocol, $"{hop.Id.Brief}: {e.Message}") { FailedHop = hop.Id };
                }
                circuit.AddHop(new Hop(hop.Id, new OnionLayer(keys)));
                CryptographicOperations.ZeroMemory(keys);
            }
        }
        catch
        {
            circuit.Destroy(DestroyReason.Finished);
            throw;
        }
        circuit.MarkOpen();
        logger.LogDebug("Built {Circuit}", circuit);
        return circuit;
    }

    /// <summary>The Extend data that asks the last hop so far to extend to <paramref name="next"/>.</summary>
    private static byte[] Extend(NodeId next, Ntor.Client ntor, bool evenIfFull)
    {
        var data = new byte[ExtendBody.Size];
        new ExtendBody(next, ntor.Request.ToArray(), evenIfFull).Write(data);
        return data;
    }

    /// <summary>Why the circuit did not reach hop <paramref name="i"/>, in words an application's error page can show.</summary>
    /// <remarks>
    /// The hop to blame is the one that could not be reached; when the circuit closed under the
    /// request, any hop on it may have gone, and none is named.
    /// </remarks>
    private static StreamException NotBuilt(IReadOnlyList<Descriptor> path, int i, ExtendFailure? failure)
    {
        var hop = path[i].Id;
        if (i == 0) return new StreamException(EndReason.CircuitClosed, $"{hop.Brief} refused the circuit.") { FailedHop = hop };
        string could = $"{path[i - 1].Id.Brief} could not extend to {hop.Brief}";
        return failure switch
        {
            null => new StreamException(EndReason.CircuitClosed, $"{could}: the circuit closed."),
            ExtendFailure.NotAPartner => new StreamException(EndReason.CircuitClosed, $"{could}: not one of its partners.") { FailedHop = hop },
            ExtendFailure.Refused => new StreamException(EndReason.CircuitClosed, $"{could}: {hop.Brief} refused the circuit.") { FailedHop = hop },
            ExtendFailure.Timeout => new StreamException(EndReason.Timeout, $"{could}: {hop.Brief} did not answer in time.") { FailedHop = hop },
            ExtendFailure.Malformed => new StreamException(EndReason.CircuitClosed, $"{could}: it found the request malformed."),
            ExtendFailure.Full => new StreamException(EndReason.CircuitClosed, $"{could}: what it carries there already fills its grant.") { FailedHop = hop, HopFull = true },
            _ => new StreamException(EndReason.CircuitClosed, $"{could}."),
        };
    }
}
