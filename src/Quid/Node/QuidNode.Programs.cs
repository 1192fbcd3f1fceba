using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Quid.Circuits;
using Quid.Credits;
using Quid.Crypto;
using Quid.Programs;
using Quid.Proxy;
using Quid.Services;
using Quid.Wire;

namespace Quid.Node;

/// <summary>
/// Hosted programs (seed 003, PROTOCOL §11). As a host (with <c>offer-cpu</c>), the node runs
/// programs paid in its credits, each at a session address of its own, published as any service
/// is; what a program sends goes out to the address it names, through a rendezvous like any
/// client's. As an owner, it deploys programs on others' nodes through a circuit to their desk
/// (the host never learns who), keeps their ids and stop secrets, asks how they are, tops them
/// up and stops them; and it posts to any program's address.
/// </summary>
public sealed partial class QuidNode
{
    /// <summary>How long a post waits for the program's answer, the stream's set-up included.</summary>
    private static readonly TimeSpan PostPatience = TimeSpan.FromSeconds(60);

    private ProgramHost? _programs;
    private LoopbackListener? _programListener;
    private readonly Dictionary<string, HostedService> _programServices = [];
    private readonly object _postIsolation = new();
    private DateTimeOffset _lastProgramSweep;
    private DateTimeOffset _lastProgramCheck;
    private int _checkingPrograms;

    public ProgramHost? Programs => _programs;

    private void OpenPrograms()
    {
        _lastProgramCheck = _time.GetUtcNow();
        if (_options.OfferCpuGfuel <= 0) return;
        _programs = ProgramHost.Open(Path.Combine(_options.DataDirectory, "programs"), new ProgramLimits(), _issuer, _time, _logger);
        _programs.Route = RouteAsync;
        _programs.Started = PublishProgram;
        _programs.Deleted = program => _ = WithdrawProgramAsync(program.Key);
    }

    /// <summary>Once the node runs: the programs' streams are served, and those kept from before run again at their addresses.</summary>
    private void StartPrograms()
    {
        if (_programs is null) return;
        _programListener = new LoopbackListener(new IPEndPoint(IPAddress.Loopback, 0), "programs", _options.Proxies.MaxConnections, _time, _logger);
        _programListener.Start(ServeProgramStreamAsync);
        _programs.Resume();
    }

    /// <summary>On the loop, each tick: stores are charged and spent programs deleted once a minute; our own programs are asked how they are every <see cref="NodeOptions.StorageAuditInterval"/>.</summary>
    private void LookAfterPrograms()
    {
        var now = _time.GetUtcNow();
        if (_programs is not null && now - _lastProgramSweep >= TimeSpan.FromMinutes(1))
        {
            _lastProgramSweep = now;
            _ = Task.Run(_programs.Sweep);
        }
        if (now - _lastProgramCheck >= _options.StorageAuditInterval && Interlocked.Exchange(ref _checkingPrograms, 1) == 0)
        {
            _lastProgramCheck = now;
            _ = Task.Run(async () =>
            {
                try
                {
                    await CheckProgramsAsync(_stopping.Token).ConfigureAwait(false);
                }
                catch (OperationCanceledException)
                {
                    // Stopping.
                }
                finally
                {
                    Volatile.Write(ref _checkingPrograms, 0);
                }
            });
        }
    }

    private async Task StopProgramsAsync()
    {
        List<HostedService> services;
        lock (_programServices)
        {
            services = [.. _programServices.Values];
            _programServices.Clear();
        }
        // Withdrawn only when a program is deleted: a restart brings each back at the same address.
        await Task.WhenAll(services.Select(s => s.StopAsync(withdraw: false).AsTask())).ConfigureAwait(false);
        if (_programListener is not null) await _programListener.DisposeAsync().ConfigureAwait(false);
        _programs?.Dispose();
    }

    // ---- As a host ----

    /// <summary>The desk's requests other than exchanges: storage to the storage host, programs to the program host.</summary>
    private async Task<bool> ServeHostedAsync(Stream stream, DeskMessage request, CancellationToken cancellationToken)
    {
        bool program = request is DeskDeploy or DeskTopup or DeskQuery or DeskStop;
        if (program && _programs is not null) return await _programs.ServeAsync(stream, request, cancellationToken).ConfigureAwait(false);
        if (!program && _storage is not null) return await _storage.ServeAsync(stream, request, cancellationToken).ConfigureAwait(false);
        await CreditDesk.WriteAsync(stream, new DeskRefused(CreditRefusal.NoRoom, program ? "This node runs no programs: it offers no CPU." : "This node stores nothing: it offers no disk."),
            cancellationToken).ConfigureAwait(false);
        return true;
    }

    private void PublishProgram(HostedProgramInfo program, byte[] seed)
    {
        var keys = ServiceKeys.Stable(seed);
        var id = program.Id;
        var service = new HostedService($"program {program.Key[..12]}", keys, (_, cancellationToken) => ConnectToProgramAsync(id, cancellationToken),
            _pool, Id, _circuits.Rendezvous, _time, _logger);
        lock (_programServices)
        {
            if (_programServices.ContainsKey(program.Key))
            {
                keys.Dispose();
                return;
            }
            _programServices[program.Key] = service;
        }
        service.Start();
        _logger.LogInformation("Hosted program {Key} is at {Address}", program.Key[..12], service.Address);
    }

    private async Task WithdrawProgramAsync(string key)
    {
        HostedService? service;
        lock (_programServices) _programServices.Remove(key, out service);
        if (service is not null) await service.StopAsync(withdraw: true).ConfigureAwait(false);
    }

    /// <summary>A stream to a program's address, as the service hands it over: to the programs' listener, with the program's id first.</summary>
    private async Task<Socket?> ConnectToProgramAsync(byte[] id, CancellationToken cancellationToken)
    {
        if (_programListener is not { } listener) return null;
        var socket = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        try
        {
            await socket.ConnectAsync(listener.LocalEndPoint, cancellationToken).ConfigureAwait(false);
            await socket.SendAsync(id, cancellationToken).ConfigureAwait(false);
            return socket;
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>Serves posts to one program on one stream (PROTOCOL §11.3) until the poster ends it or waits too long.</summary>
    private async Task ServeProgramStreamAsync(Socket socket)
    {
        var stream = new NetworkStream(socket, ownsSocket: true);
        await using (stream.ConfigureAwait(false))
        {
            using var patience = new CancellationTokenSource(CreditDesk.Patience, _time);
            using var either = CancellationTokenSource.CreateLinkedTokenSource(_programListener!.Stopping, patience.Token);
            try
            {
                var id = new byte[DeskCodec.ObjectSize];
                if (await stream.ReadAtLeastAsync(id, id.Length, throwOnEndOfStream: false, either.Token).ConfigureAwait(false) < id.Length) return;
                while (await ProgramPostCodec.ReadFrameAsync(stream, either.Token).ConfigureAwait(false) is { } body)
                {
                    ProgramPost post;
                    try
                    {
                        post = ProgramPostCodec.DecodePost(body);
                    }
                    catch (WireException e)
                    {
                        await stream.WriteAsync(ProgramPostCodec.Encode(new ProgramAnswer(ProgramAnswerKind.Refused, Encoding.UTF8.GetBytes($"Not a post: {e.Message}"))), either.Token).ConfigureAwait(false);
                        return;
                    }
                    // A call may run for a second: not on the listener's thread.
                    var result = await Task.Run(() => _programs!.Post(id, post.Payment, post.Message), either.Token).ConfigureAwait(false);
                    if (result.Refusal is { } refusal)
                        await stream.WriteAsync(ProgramPostCodec.Encode(new ProgramAnswer(ProgramAnswerKind.Refused, Encoding.UTF8.GetBytes(refusal))), either.Token).ConfigureAwait(false);
                    else
                    {
                        foreach (var reply in result.Replies) await stream.WriteAsync(ProgramPostCodec.Encode(new ProgramAnswer(ProgramAnswerKind.Reply, reply)), either.Token).ConfigureAwait(false);
                        await stream.WriteAsync(ProgramPostCodec.Encode(new ProgramAnswer(ProgramAnswerKind.Done, [])), either.Token).ConfigureAwait(false);
                    }
                    patience.CancelAfter(CreditDesk.Patience);
                }
            }
            catch (Exception e) when (e is WireException or IOException or OperationCanceledException or SocketException)
            {
                _logger.LogDebug("A stream to a hosted program ended: {Reason}", e.Message);
            }
        }
    }

    /// <summary>Sends what a program sent to the session address it named; a program here is handed it directly.</summary>
    private async Task RouteAsync(HostedProgramInfo from, ProgramMessage message)
    {
        string to = Encoding.ASCII.GetString(message.To);
        try
        {
            using var timeout = CancellationTokenSource.CreateLinkedTokenSource(_stopping.Token);
            timeout.CancelAfter(PostPatience);
            await PostAsync(to, [], message.Body, timeout.Token).ConfigureAwait(false);
        }
        catch (Exception e) when (e is ProgramPostException or SessionAddressException or StreamException or IOException or WireException or OperationCanceledException)
        {
            _logger.LogInformation("A message from hosted program {Key} to {To} was not delivered: {Reason}", from.Key[..12], to.Length > 16 ? to[..16] + "…" : to, e.Message);
        }
    }

    // ---- Posting to any program ----

    /// <summary>
    /// Posts <paramref name="message"/> to the program at <paramref name="address"/>, paying
    /// <paramref name="postage"/>, and returns its replies; throws <see cref="ProgramPostException"/>
    /// when its host refuses the post.
    /// </summary>
    public async Task<IReadOnlyList<byte[]>> PostAsync(string address, IReadOnlyList<EpochCredit> postage, byte[] message, CancellationToken cancellationToken)
    {
        var parsed = SessionAddress.Parse(address);
        // Ours: no circuit to ourselves. We host both ends anyway.
        if (_programs?.Programs().FirstOrDefault(p => p.AddressKey.AsSpan().SequenceEqual(parsed.PublicKey)) is { } local)
        {
            var result = await Task.Run(() => _programs.Post(local.Id, postage, message), cancellationToken).ConfigureAwait(false);
            return result.Refusal is { } refusal ? throw new ProgramPostException(refusal) : result.Replies;
        }
        var stream = await _serviceClient.OpenStreamAsync(new StreamTarget(parsed.ToString(), 1), _postIsolation, cancellationToken).ConfigureAwait(false);
        await using (stream.ConfigureAwait(false))
        {
            await stream.WriteAsync(ProgramPostCodec.Encode(new ProgramPost(postage, message)), cancellationToken).ConfigureAwait(false);
            await stream.FlushAsync(cancellationToken).ConfigureAwait(false);
            var replies = new List<byte[]>();
            while (true)
            {
                var body = await ProgramPostCodec.ReadFrameAsync(stream, cancellationToken).ConfigureAwait(false)
                    ?? throw new ProgramPostException("The program's host closed the stream without answering.");
                var answer = ProgramPostCodec.DecodeAnswer(body);
                switch (answer.Kind)
                {
                    case ProgramAnswerKind.Reply:
                        replies.Add(answer.Data);
                        break;
                    case ProgramAnswerKind.Done:
                        return replies;
                    default:
                        throw new ProgramPostException(Encoding.UTF8.GetString(answer.Data));
                }
            }
        }
    }

    /// <summary>Takes <paramref name="amount"/> of <paramref name="host"/>'s credits from the wallet as postage (none for 0).</summary>
    public async Task<IReadOnlyList<EpochCredit>> PostageAsync(NodeId host, long amount, CancellationToken cancellationToken) =>
        amount <= 0 ? [] : [.. (await PayAsync(host, amount, cancellationToken).ConfigureAwait(false)).Select(c => new EpochCredit(c.Epoch, c.Token))];

    // ---- As an owner ----

    public IReadOnlyList<DeployedProgram> DeployedPrograms() => _database.LoadDeployed();

    /// <summary>The program of ours whose id starts with <paramref name="prefix"/> (8 hex digits or more).</summary>
    public DeployedProgram? FindDeployed(string prefix) =>
        prefix.Length < 8 ? null : DeployedPrograms().SingleOrDefault(p => p.Key.StartsWith(prefix, StringComparison.OrdinalIgnoreCase));

    /// <summary>
    /// Deploys <paramref name="wasm"/> on <paramref name="host"/>, paying <paramref name="credits"/>
    /// of its credits from our wallet, through a circuit to its desk: the host learns the module,
    /// never whose it is. <paramref name="postage"/> is what each message to it must pay.
    /// </summary>
    public async Task<DeployedProgram> DeployAsync(NodeId host, byte[] wasm, string name, long credits, uint postage, CancellationToken cancellationToken)
    {
        if (credits < ProgramHost.MinimumDeployCredits) throw new CreditException($"A deploy pays at least {ProgramHost.MinimumDeployCredits} credits (a Gfuel).");
        var secret = RandomNumberGenerator.GetBytes(32);
        var paid = await PayAsync(host, credits, cancellationToken).ConfigureAwait(false);
        var payment = paid.Select(c => new EpochCredit(c.Epoch, c.Token)).ToList();
        DeskProgram answer;
        try
        {
            answer = await DeskAsync(host, async (stream, token) =>
            {
                await CreditDesk.WriteAsync(stream, new DeskDeploy((uint)wasm.Length, postage, SHA256.HashData(secret), payment), token).ConfigureAwait(false);
                var ready = await CreditDesk.ReadAsync(stream, _time, token).ConfigureAwait(false);
                if (ready is DeskRefused refused) throw new CreditException($"{host.Brief} refused: {refused.Text}", refused.Reason);
                if (ready is not DeskReady) throw new CreditException($"{host.Brief} answered a deploy with {ready?.Type.ToString() ?? "nothing"}.");
                await stream.WriteAsync(wasm, token).ConfigureAwait(false);
                await stream.FlushAsync(token).ConfigureAwait(false);
                return await CreditDesk.ReadAsync(stream, _time, token).ConfigureAwait(false) switch
                {
                    DeskProgram program => program,
                    DeskRefused refused2 => throw new CreditException($"{host.Brief} refused: {refused2.Text}", refused2.Reason),
                    var other => throw new CreditException($"{host.Brief} answered the module with {other?.Type.ToString() ?? "nothing"}."),
                };
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (Exception e) when (!CreditsGone((e as CreditException)?.Reason))
        {
            // Refused before the host took the payment (the module, its room), or never reached: the credits are still good.
            _wallet.Change(paid, []);
            throw;
        }
        var deployed = new DeployedProgram(answer.Id, host, name, secret, new SessionAddress(answer.AddressKey).ToString(), _time.GetUtcNow(), postage,
            answer.State, (long)answer.Fuel, answer.Low, null, _time.GetUtcNow());
        _database.SaveDeployed(deployed);
        _logger.LogInformation("Deployed {Name} on {Host} as {Key}, at {Address}", name, host.Brief, deployed.Key[..12], deployed.Address);
        return deployed;
    }

    /// <summary>Asks the host how <paramref name="program"/> is, keeps the answer, and warns when its fuel is low.</summary>
    public async Task<DeployedProgram> CheckAsync(DeployedProgram program, CancellationToken cancellationToken)
    {
        var answer = await DeskAsync(program.Host, async (stream, token) =>
        {
            await CreditDesk.WriteAsync(stream, new DeskQuery(program.Id), token).ConfigureAwait(false);
            return await CreditDesk.ReadAsync(stream, _time, token).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        return await KeepAsync(program, answer).ConfigureAwait(false);
    }

    /// <summary>Adds <paramref name="credits"/> of its host's credits of fuel to <paramref name="program"/>.</summary>
    public async Task<DeployedProgram> TopUpAsync(DeployedProgram program, long credits, CancellationToken cancellationToken) =>
        await KeepAsync(program, await TopUpAtAsync(program.Host, program.Id, credits, cancellationToken).ConfigureAwait(false)).ConfigureAwait(false);

    /// <summary>Tops up anyone's program whose id we were given, at <paramref name="host"/>: no secret is needed to keep a program alive.</summary>
    public async Task<DeskProgram> TopUpAsync(NodeId host, byte[] id, long credits, CancellationToken cancellationToken) =>
        await TopUpAtAsync(host, id, credits, cancellationToken).ConfigureAwait(false) switch
        {
            DeskProgram program => program,
            DeskRefused refused => throw new CreditException($"{host.Brief} refused: {refused.Text}", refused.Reason),
            var other => throw new CreditException($"{host.Brief} answered with {other?.Type.ToString() ?? "nothing"}."),
        };

    /// <summary>Pays <paramref name="host"/> for fuel for program <paramref name="id"/> and returns its answer; credits it did not take go back to the wallet.</summary>
    private async Task<DeskMessage?> TopUpAtAsync(NodeId host, byte[] id, long credits, CancellationToken cancellationToken)
    {
        var paid = await PayAsync(host, credits, cancellationToken).ConfigureAwait(false);
        var payment = paid.Select(c => new EpochCredit(c.Epoch, c.Token)).ToList();
        DeskMessage? answer;
        try
        {
            answer = await DeskAsync(host, async (stream, token) =>
            {
                await CreditDesk.WriteAsync(stream, new DeskTopup(id, payment), token).ConfigureAwait(false);
                return await CreditDesk.ReadAsync(stream, _time, token).ConfigureAwait(false);
            }, cancellationToken).ConfigureAwait(false);
        }
        catch (CreditException)
        {
            _wallet.Change(paid, []);
            throw;
        }
        if (answer is DeskRefused refused && !CreditsGone(refused.Reason)) _wallet.Change(paid, []);
        return answer;
    }

    /// <summary>Stops <paramref name="program"/> for good: its host deletes it and everything it kept.</summary>
    public async Task StopAsync(DeployedProgram program, CancellationToken cancellationToken)
    {
        var answer = await DeskAsync(program.Host, async (stream, token) =>
        {
            await CreditDesk.WriteAsync(stream, new DeskStop(program.Id, program.Secret), token).ConfigureAwait(false);
            return await CreditDesk.ReadAsync(stream, _time, token).ConfigureAwait(false);
        }, cancellationToken).ConfigureAwait(false);
        if (answer is DeskRefused { Reason: not CreditRefusal.NotFound } refused) throw new CreditException($"{program.Host.Brief} refused: {refused.Text}", refused.Reason);
        _database.DeleteDeployed(program.Id);
        _logger.LogInformation("Stopped {Name} ({Key}) on {Host}", program.Name, program.Key[..12], program.Host.Brief);
    }

    /// <summary>
    /// Keeps what the host said of <paramref name="program"/>: a program it no longer has is
    /// Deleted. Each answer is an audit of the CPU we paid for (PROTOCOL §11.2): a program that
    /// answers passes; one gone before it could have run out of fuel and through its grace (it
    /// ran, or was paused with its grace ahead, at a check less than a grace ago) was dropped by
    /// its host, which is then answered as a host that loses what it stores.
    /// </summary>
    private async Task<DeployedProgram> KeepAsync(DeployedProgram program, DeskMessage? answer)
    {
        var now = _time.GetUtcNow();
        bool? passed = answer switch
        {
            DeskProgram => true,
            DeskRefused { Reason: CreditRefusal.NotFound } when program.State != ProgramState.Deleted && now - program.CheckedAt < ProgramHost.Grace
                && (program.DeleteAt is { } deleteAt ? deleteAt > now : program.State == ProgramState.Running) => false,
            _ => null,
        };
        if (passed is { } audited)
        {
            if (!audited) _logger.LogWarning("Host {Host} dropped hosted program {Name} ({Key}) before its fuel and grace ran out: answered as a host that loses what it keeps",
                program.Host.Brief, program.Name, program.Key[..12]);
            await OnLoopAsync(() =>
            {
                Execute(_core.Audited(program.Host, audited));
                return true;
            }).ConfigureAwait(false);
        }
        var kept = answer switch
        {
            DeskProgram p => program with
            {
                State = p.State, Fuel = (long)p.Fuel, Low = p.Low, CheckedAt = now,
                DeleteAt = p.DeleteAt == 0 ? null : DateTimeOffset.FromUnixTimeSeconds((long)p.DeleteAt),
            },
            DeskRefused { Reason: CreditRefusal.NotFound } => program with { State = ProgramState.Deleted, Fuel = 0, Low = false, CheckedAt = now },
            DeskRefused refused => throw new CreditException($"{program.Host.Brief} refused: {refused.Text}", refused.Reason),
            _ => throw new CreditException($"{program.Host.Brief} answered with {answer?.Type.ToString() ?? "nothing"}."),
        };
        _database.SaveDeployed(kept);
        if (kept.State == ProgramState.Paused)
            _logger.LogWarning("Hosted program {Name} ({Key}) on {Host} is out of fuel and paused; it is deleted at {DeleteAt:u} unless topped up: quid host topup {Key}",
                kept.Name, kept.Key[..12], kept.Host.Brief, kept.DeleteAt, kept.Key[..12]);
        else if (kept.Low)
            _logger.LogWarning("Hosted program {Name} ({Key}) on {Host} is low on fuel ({Fuel:N0} left); top it up: quid host topup {Key}",
                kept.Name, kept.Key[..12], kept.Host.Brief, kept.Fuel, kept.Key[..12]);
        else if (kept.State == ProgramState.Deleted && program.State != ProgramState.Deleted)
            _logger.LogWarning("Hosted program {Name} ({Key}) is gone from {Host}", kept.Name, kept.Key[..12], kept.Host.Brief);
        return kept;
    }

    /// <summary>Asks after each program of ours still running or paused: the warning comes in the answer.</summary>
    private async Task CheckProgramsAsync(CancellationToken cancellationToken)
    {
        foreach (var program in DeployedPrograms().Where(p => p.State != ProgramState.Deleted))
        {
            try
            {
                await CheckAsync(program, cancellationToken).ConfigureAwait(false);
            }
            catch (CreditException e)
            {
                _logger.LogInformation("Could not ask {Host} how {Name} is: {Reason}", program.Host.Brief, program.Name, e.Message);
            }
        }
    }
}

/// <summary>A program's host did not hand a post over (it is paused, the postage was short, there is no such program), or the stream failed.</summary>
public sealed class ProgramPostException(string message) : Exception(message);
