using Quid.Crypto;
using Quid.Wire;

namespace Quid.Exchange;

public enum AgreementState { Proposed, Active, Ended }

/// <summary>One bilateral agreement, seen from our side: what we grant the partner and what it grants us.</summary>
public sealed class Agreement
{
    internal Agreement(AgreementTerms terms, NodeId self, byte[] proposerSignature, Allocation? ourAllocation, DateTimeOffset created)
    {
        Terms = terms;
        Id = terms.Id;
        Partner = terms.Counterpart(self);
        WeProposed = terms.Proposer == self;
        ProposerSignature = proposerSignature;
        OurAllocation = ourAllocation;
        Created = created;
        TheyGrant = WeProposed ? terms.AcceptorGrants : terms.ProposerGrants;
    }

    public AgreementTerms Terms { get; }
    public AgreementId Id { get; }
    public NodeId Partner { get; }
    public bool WeProposed { get; }
    /// <summary>Unpublished on both sides: each uses the other only as a first hop (<see cref="AgreementTerms.Private"/>).</summary>
    public bool Private => Terms.Private;
    public AgreementState State { get; internal set; } = AgreementState.Proposed;
    public byte[] ProposerSignature { get; }
    public byte[]? AcceptorSignature { get; internal set; }
    /// <summary>The block of our offer that this agreement holds for the partner, if we grant anything.</summary>
    public Allocation? OurAllocation { get; internal set; }
    public DateTimeOffset Created { get; }
    public DateTimeOffset? Ended { get; internal set; }

    /// <summary>What we grant now: the terms' grant, or less after verdicts against the partner.</summary>
    public Block? WeGrant => OurAllocation?.Size;
    /// <summary>What we granted when the agreement was made: the most a recovering partner regains.</summary>
    public Block? WeGrantedAtStart => WeProposed ? Terms.ProposerGrants : Terms.AcceptorGrants;
    /// <summary>What the partner grants us now: the terms' grant, or less if it told us it cut it.</summary>
    public Block? TheyGrant { get; internal set; }
    /// <summary>The disk we grant the partner, paid out as credits on us (PROTOCOL §10.2).</summary>
    public DiskBlock? WeGrantDisk => Terms.DiskGrantedBy(Terms.Counterpart(Partner));
    /// <summary>The disk the partner grants us, paid out as credits on it.</summary>
    public DiskBlock? TheyGrantDisk => Terms.DiskGrantedBy(Partner);
    /// <summary>The CPU we grant the partner, paid out as credits on us.</summary>
    public CpuBlock? WeGrantCpu => Terms.CpuGrantedBy(Terms.Counterpart(Partner));
    /// <summary>The CPU the partner grants us, paid out as credits on it.</summary>
    public CpuBlock? TheyGrantCpu => Terms.CpuGrantedBy(Partner);
    /// <summary>What the disk and CPU we grant the partner are worth a day, in credits: 0 when we grant neither.</summary>
    public long WeGrantCreditsPerDay => (WeGrantDisk?.MiB ?? 0) + (WeGrantCpu?.CreditsPerDay ?? 0);
    /// <summary>What the disk and CPU the partner grants us are worth a day, in credits.</summary>
    public long TheyGrantCreditsPerDay => (TheyGrantDisk?.MiB ?? 0) + (TheyGrantCpu?.CreditsPerDay ?? 0);
    /// <summary>Credits issued to the partner against what we grant it: a credit is a MiB·day of disk or <see cref="CpuBlock.FuelPerCredit"/> of fuel.</summary>
    public long CreditsIssued { get; internal set; }
    /// <summary>Credits the partner issued us against what it grants us.</summary>
    public long CreditsReceived { get; internal set; }
    /// <summary>What the partner granted us at our last good probe of it: a grant that rose since is growing toward what it signed.</summary>
    internal Block? TheyGrantAtLastProbe { get; set; }

    public override string ToString() => $"{(Private ? "private " : "")}agreement {Id} with {Partner.Brief}: we grant {WeGrant?.ToString() ?? "nothing"}, they grant {TheyGrant?.ToString() ?? "nothing"}";
}
