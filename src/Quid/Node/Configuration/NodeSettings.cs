using System.Net;
using Microsoft.Extensions.Logging;

namespace Quid.Node.Configuration;

public enum LogFormat { Text, Json }

/// <summary>The effective configuration of a node: what it starts with, and where each value came from.</summary>
/// <param name="Control">The control API's loopback address; null when it is off.</param>
/// <param name="ConfigFile">quid.toml in the data directory, whether or not it exists.</param>
/// <param name="Warnings">Things worth telling that do not stop the node, such as an unknown QUID_ variable.</param>
public sealed record NodeSettings(
    NodeOptions Node,
    IPEndPoint? Control,
    LogLevel LogLevel,
    LogFormat LogFormat,
    string ConfigFile,
    bool ConfigFileExists,
    IReadOnlyList<EffectiveSetting> Values,
    IReadOnlyList<string> Warnings)
{
    public string DataDirectory => Node.DataDirectory;
}
