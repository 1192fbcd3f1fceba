using System.Net;
using Microsoft.Extensions.Logging;

namespace Quid.Node.Configuration;

public enum LogFormat { Text, Json }

/// <summary>The effective configuration of a node: what it starts with, and where each value came from.</summary>
public sealed record NodeSettings(
    NodeOptions Node,
    /// <summary>The control API's loopback address; null when it is off.</summary>
    IPEndPoint? Control,
    LogLevel LogLevel,
    LogFormat LogFormat,
    /// <summary>quid.toml in the data directory, whether or not it exists.</summary>
    string ConfigFile,
    bool ConfigFileExists,
    IReadOnlyList<EffectiveSetting> Values,
    /// <summary>Things worth telling that do not stop the node, such as an unknown QUID_ variable.</summary>
    IReadOnlyList<string> Warnings)
{
    public string DataDirectory => Node.DataDirectory;
}
