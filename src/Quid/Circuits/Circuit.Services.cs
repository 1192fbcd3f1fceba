using Quid.Wire;

namespace Quid.Circuits;

/// <summary>
/// Where a circuit ending here takes what a session-address service and its clients ask of the
/// overlay: the node, which publishes and looks up on its loop and answers on the circuit later
/// (<see cref="Circuit.AnswerIntroduction"/>, <see cref="Circuit.PassIntroduction"/>,
/// <see cref="Circuit.AnswerLookup"/>). So neither end ever publishes or looks up from its own
/// node: the overlay sees only the circuit's last hop.
/// </summary>
internal interface IServiceDirectory
{
    /// <summary>The circuit's origin asks us to be its service's introduction point, publishing <paramref name="record"/>.</summary>
    void EstablishIntroduction(Circuit circuit, ServiceRecord record);

    /// <summary>The circuit's origin asks us to look a service up, carrying its introduction.</summary>
    void Lookup(Circuit circuit, ServiceLookupBody lookup);
}

/// <summary>
/// Introduction points and lookups over a circuit (PROTOCOL §9.13). A service's circuit to its
/// introduction point I carries the record I publishes, and brings back the introductions that
/// clients' lookups deliver to I; a client's circuit carries its lookup to its last hop, which
/// runs it in the overlay and answers with the record found.
/// </summary>
public sealed partial class Circuit
{
    private TaskCompletionSource<IntroductionStatus>? _introductionAnswer;
    private Action<byte[]>? _introductions;
    private TaskCompletionSource<ServiceLookupAnsweredBody>? _lookupAnswer;

    /// <summary>At a last hop: where EstablishIntroduction and ServiceLookup go.</summary>
    internal IServiceDirectory? ServiceDirectory { get; init; }

    /// <summary>At an introduction point: the record this circuit's service asked us to publish, for as long as the circuit lives.</summary>
    internal ServiceRecord? IntroducedRecord { get; set; }

    // ---- The service ----

    /// <summary>
    /// Asks this circuit's last hop to be an introduction point for <paramref name="record"/>:
    /// to publish it, and to pass each introduction it receives to <paramref name="introductions"/>
    /// (called on the circuit's read loop: it must not block). Called again with a newer record
    /// to republish. Returns the point's answer; <see cref="StreamException"/> if it is silent.
    /// </summary>
    public async Task<IntroductionStatus> EstablishIntroductionAsync(ServiceRecord record, Action<byte[]> introductions, TimeSpan timeout, CancellationToken cancellationToken)
    {
        ArgumentNullException.ThrowIfNull(record);
        ArgumentNullException.ThrowIfNull(introductions);
        if (Role != CircuitRole.Origin) throw new InvalidOperationException("Only the circuit's origin establishes an introduction point.");
        var answer = new TaskCompletionSource<IntroductionStatus>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_meeting is not null || _serving is not null || _lookupAnswer is not null) throw new InvalidOperationException("A circuit to an introduction point serves nothing else.");
            if (_introductionAnswer is not null) throw new InvalidOperationException("An EstablishIntroduction is already waiting for its answer.");
            _introductionAnswer = answer;
            _introductions = introductions;
        }
        try
        {
            if (!SendRelay(RelayCommand.EstablishIntroduction, 0, record.Encoded)) throw new StreamException(EndReason.CircuitClosed, "The circuit closed.");
            return await answer.Task.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
        }
        catch (TimeoutException)
        {
            throw new StreamException(EndReason.Timeout, $"The introduction point did not answer within {timeout.TotalSeconds:0} s.");
        }
        finally
        {
            lock (_lock)
                if (_introductionAnswer == answer) _introductionAnswer = null;
        }
    }

    // ---- The client ----

    /// <summary>
    /// Asks this circuit's last hop to look up <paramref name="lookupId"/>, carrying
    /// <paramref name="introduction"/> to the service. Returns the record found, or null when
    /// none was. Throws <see cref="StreamException"/> (ResourceLimit) when the last hop will not
    /// look up for us, or when it is silent.
    /// </summary>
    public async Task<ServiceRecord?> LookupAsync(byte[] lookupId, byte[] introduction, TimeSpan timeout, CancellationToken cancellationToken)
    {
        if (Role != CircuitRole.Origin) throw new InvalidOperationException("Only the circuit's origin looks up.");
        var body = new byte[ServiceLookupBody.MaxSize];
        int length = new ServiceLookupBody(lookupId, introduction).Write(body);
        var answer = new TaskCompletionSource<ServiceLookupAnsweredBody>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_lock)
        {
            if (_introductions is not null || _serving is not null) throw new InvalidOperationException("A circuit to an introduction point serves nothing else.");
            if (_lookupAnswer is not null) throw new InvalidOperationException("A lookup is already waiting for its answer on this circuit.");
            _lookupAnswer = answer;
        }
        try
        {
            if (!SendRelay(RelayCommand.ServiceLookup, 0, body.AsSpan(0, length))) throw new StreamException(EndReason.CircuitClosed, "The circuit closed.");
            var answered = await answer.Task.WaitAsync(timeout, Time, cancellationToken).ConfigureAwait(false);
            return answered.Status switch
            {
                LookupStatus.Found => answered.Record,
                LookupStatus.NotFound => null,
                _ => throw new StreamException(EndReason.ResourceLimit, "The circuit's last hop looks up for as many circuits as it will."),
            };
        }
        catch (TimeoutException)
        {
            throw new StreamException(EndReason.Timeout, $"The lookup was not answered within {timeout.TotalSeconds:0} s.");
        }
        finally
        {
            lock (_lock)
                if (_lookupAnswer == answer) _lookupAnswer = null;
        }
    }

    // ---- At the last hop: the node answers ----

    internal void AnswerIntroduction(IntroductionStatus status) => SendRelay(RelayCommand.IntroductionEstablished, 0, [(byte)status]);

    internal void PassIntroduction(byte[] introduction) => SendRelay(RelayCommand.Introduction, 0, introduction);

    internal void AnswerLookup(ServiceLookupAnsweredBody answer) => SendRelay(RelayCommand.ServiceLookupAnswered, 0, answer.ToBytes());

    // ---- Messages ----

    /// <summary>At a last hop: a record to publish, or a lookup; malformed ones are answered, as the node would answer a bad record.</summary>
    private void OnServiceRequest(IServiceDirectory directory, RelayMessage message)
    {
        if (message.Command == RelayCommand.EstablishIntroduction)
        {
            ServiceRecord record;
            try
            {
                record = ServiceRecord.Decode(message.Data);
            }
            catch (WireException)
            {
                AnswerIntroduction(IntroductionStatus.BadRecord);
                return;
            }
            directory.EstablishIntroduction(this, record);
            return;
        }
        ServiceLookupBody lookup;
        try
        {
            lookup = ServiceLookupBody.Read(message.Data);
        }
        catch (WireException e)
        {
            Violation($"a malformed lookup: {e.Message}");
            return;
        }
        directory.Lookup(this, lookup);
    }

    /// <summary>At an origin: the answer to what we asked, or an introduction for our service; anything else breaks the protocol.</summary>
    private void OnServiceAnswer(RelayMessage message)
    {
        try
        {
            switch (message.Command)
            {
                case RelayCommand.IntroductionEstablished when _introductionAnswer is { } waiting:
                    waiting.TrySetResult(IntroductionEstablishedBody.Read(message.Data));
                    return;
                case RelayCommand.Introduction when _introductions is { } introductions:
                    introductions(IntroductionBody.Read(message.Data));
                    return;
                case RelayCommand.ServiceLookupAnswered when _lookupAnswer is { } waiting:
                    waiting.TrySetResult(ServiceLookupAnsweredBody.Read(message.Data));
                    return;
            }
        }
        catch (WireException e)
        {
            Violation(e.Message);
            return;
        }
        Violation($"{message.Command} that was not asked for");
    }

    /// <summary>Fails what waits for an introduction point or a lookup; for <see cref="Close"/>.</summary>
    private void CloseServiceRequests()
    {
        var closed = new StreamException(EndReason.CircuitClosed, "The circuit closed.");
        _introductionAnswer?.TrySetException(closed);
        _lookupAnswer?.TrySetException(closed);
    }
}
