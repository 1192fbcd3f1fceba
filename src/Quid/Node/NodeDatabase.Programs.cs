using Quid.Crypto;
using Quid.Wire;

namespace Quid.Node;

/// <summary>
/// A program we deployed on another node (PROTOCOL §11.2): the only record of where it runs and of
/// the secret that stops it, with what its host said at the last status.
/// </summary>
public sealed record DeployedProgram(byte[] Id, NodeId Host, string Name, byte[] Secret, string Address, DateTimeOffset Deployed, long Postage,
    ProgramState State, long Fuel, bool Low, DateTimeOffset? DeleteAt, DateTimeOffset CheckedAt)
{
    public string Key => Convert.ToHexStringLower(Id);
}

/// <summary>A mailbox of ours: the program it runs in, the secret that fetches from it, and the X25519 key mail to it is sealed to.</summary>
public sealed record Mailbox(byte[] Program, byte[] Secret, byte[] PrivateKey);

public sealed partial class NodeDatabase
{
    public IReadOnlyList<DeployedProgram> LoadDeployed() =>
        Read("SELECT id, host, name, secret, address, deployed_at, postage, state, fuel, low, delete_at, checked_at FROM deployed ORDER BY deployed_at", reader =>
            new DeployedProgram((byte[])reader[0], new NodeId((byte[])reader[1]), reader.GetString(2), (byte[])reader[3], reader.GetString(4),
                DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(5)), reader.GetInt64(6), Enum.Parse<ProgramState>(reader.GetString(7)), reader.GetInt64(8), reader.GetInt64(9) != 0,
                reader.IsDBNull(10) ? null : DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(10)), DateTimeOffset.FromUnixTimeSeconds(reader.GetInt64(11))));

    public void SaveDeployed(DeployedProgram program) =>
        Write("INSERT OR REPLACE INTO deployed (id, host, name, secret, address, deployed_at, postage, state, fuel, low, delete_at, checked_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
            program.Id, program.Host.ToBytes(), program.Name, program.Secret, program.Address, program.Deployed.ToUnixTimeSeconds(), program.Postage, program.State.ToString(), program.Fuel,
            program.Low ? 1 : 0, program.DeleteAt?.ToUnixTimeSeconds(), program.CheckedAt.ToUnixTimeSeconds());

    public void DeleteDeployed(byte[] id)
    {
        Write("DELETE FROM mailboxes WHERE program = $1", id);
        Write("DELETE FROM deployed WHERE id = $1", id);
    }

    public IReadOnlyList<Mailbox> LoadMailboxes() =>
        Read("SELECT program, secret, private_key FROM mailboxes", reader => new Mailbox((byte[])reader[0], (byte[])reader[1], (byte[])reader[2]));

    public void SaveMailbox(Mailbox box) =>
        Write("INSERT OR REPLACE INTO mailboxes (program, secret, private_key) VALUES ($1, $2, $3)", box.Program, box.Secret, box.PrivateKey);
}
