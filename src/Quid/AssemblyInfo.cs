// Quid: bandwidth bartered for anonymity. See docs/ARCHITECTURE.md for the layers.
[assembly: System.CLSCompliant(false)]
