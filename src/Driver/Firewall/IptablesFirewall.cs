using System.Text.RegularExpressions;

namespace Skein.Driver.Firewall;

/// <summary>
/// <see cref="IFirewall"/> on the <c>iptables</c>/<c>ip6tables</c> commands, whichever backend they resolve to
/// (decisions #16: the same as dockerd's). Reads with <c>-S</c>, writes with one
/// <c>iptables-restore --noflush</c> batch per family, so each table changes atomically. Every write also
/// re-asserts skein's chains and jumps, so a dockerd that rebuilt its rules is repaired by the next call.
/// Rules a network or endpoint owns carry a comment naming it (<c>skein:BRIDGE</c>, <c>skein:ep:ID</c>).
/// </summary>
public sealed partial class IptablesFirewall : IFirewall, IUnderlayFirewall
{
    private const int Attempts = 2;

    private readonly IptablesOptions _options;
    private readonly ICommandRunner _runner;
    private readonly FirewallRuleBuilder _rules;
    private readonly SkeinChains _chains;
    private readonly Lock _gate = new();

    /// <summary>
    /// Owners (rule comments) whose rules exist in skein's chains, known from the last read plus what skein wrote
    /// since; null when unknown (at start, and after any failure). Lets removing an endpoint that never published a
    /// port, the common case at every container stop, cost no command at all.
    /// </summary>
    private HashSet<string>? _knownOwners;

    public IptablesFirewall(IptablesOptions options)
        : this(options, ProcessCommandRunner.Instance)
    {
    }

    internal IptablesFirewall(IptablesOptions options, ICommandRunner runner)
    {
        FirewallInputValidator.ValidateOptions(options);
        _options = options;
        _runner = runner;
        _chains = new SkeinChains(options.ChainPrefix);
        _rules = new FirewallRuleBuilder(_chains, options);
    }

    private IReadOnlyList<IpFamily> Families => _options.EnableIpv6 ? [IpFamily.V4, IpFamily.V6] : [IpFamily.V4];

    public void EnsureBaseChains() =>
        Transact("ensure base chains", ensureBase: true, static (_, _, _) => { });

    public void ApplyNetwork(NetworkFirewall network)
    {
        FirewallInputValidator.ValidateNetwork(network, _options);
        var owner = FirewallRuleBuilder.NetworkOwner(network.BridgeName);
        Transact($"apply network {network.BridgeName}", ensureBase: true, (family, tables, script) =>
            ReplaceOwned(script, tables, owner, _rules.NetworkRules(network, family)),
            owners => owners.Add(owner));
    }

    public void RemoveNetwork(string bridgeName)
    {
        FirewallInputValidator.ValidateBridgeName(bridgeName, _options);
        RemoveOwner(FirewallRuleBuilder.NetworkOwner(bridgeName), $"remove network {bridgeName}");
    }

    public void ApplyPortMappings(EndpointPorts endpoint)
    {
        FirewallInputValidator.ValidateEndpoint(endpoint, _options);
        PublishedPortClaims.RefuseOverlapWithin(endpoint);
        var owner = FirewallRuleBuilder.EndpointOwner(endpoint.EndpointId);
        Transact($"apply ports of endpoint {endpoint.EndpointId}", ensureBase: true, (family, tables, script) =>
        {
            // IPv4 is planned first, so a refusal here has changed nothing in either family.
            if (family == IpFamily.V4) PublishedPortClaims.RefuseOverlapWithOthers(endpoint, tables[IptablesTable.Nat].RulesOf(_chains.Dnat));
            ReplaceOwned(script, tables, owner, _rules.EndpointRules(endpoint, family));
        },
        owners =>
        {
            if (endpoint.Ports.Count > 0) owners.Add(owner);
            else owners.Remove(owner);
        });
    }

    public void RemovePortMappings(string endpointId)
    {
        FirewallInputValidator.ValidateEndpointId(endpointId);
        RemoveOwner(FirewallRuleBuilder.EndpointOwner(endpointId), $"remove ports of endpoint {endpointId}");
    }

    private void RemoveOwner(string owner, string operation)
    {
        lock (_gate)
        {
            if (_knownOwners is { } known && !known.Contains(owner)) return;
            Transact(operation, ensureBase: false, (_, tables, script) => ReplaceOwned(script, tables, owner, []), owners => owners.Remove(owner));
        }
    }

    public void Reconcile(IReadOnlyCollection<NetworkFirewall> networks, IReadOnlyCollection<EndpointPorts> endpoints)
    {
        ArgumentNullException.ThrowIfNull(networks);
        ArgumentNullException.ThrowIfNull(endpoints);
        foreach (var network in networks) FirewallInputValidator.ValidateNetwork(network, _options);
        foreach (var endpoint in endpoints) FirewallInputValidator.ValidateEndpoint(endpoint, _options);
        if (networks.GroupBy(n => n.BridgeName).FirstOrDefault(g => g.Count() > 1) is { } twiceBridge)
            throw Skein.Ipam.SkeinException.Invalid($"firewall: bridge '{twiceBridge.Key}' appears in more than one network record");
        if (endpoints.GroupBy(e => e.EndpointId).FirstOrDefault(g => g.Count() > 1) is { } twiceEndpoint)
            throw Skein.Ipam.SkeinException.Invalid($"firewall: endpoint '{twiceEndpoint.Key}' appears in more than one record");

        // Records that claim one host port twice cannot both work; recovery must not fail for it, so say so.
        var claims = endpoints.SelectMany(PublishedPortClaims.ClaimsOf).ToList();
        for (var i = 0; i < claims.Count; i++)
            for (var j = i + 1; j < claims.Count; j++)
                if (claims[i].Owner != claims[j].Owner && claims[i].Overlaps(claims[j]))
                    Log($"firewall: conflict: host port {claims[i]} ({claims[i].Owner}) overlaps {claims[j]} ({claims[j].Owner}); the DNAT listed first wins");

        Transact($"reconcile {networks.Count} network(s), {endpoints.Count} endpoint(s)", ensureBase: false, (family, tables, script) =>
        {
            var wanted = networks.SelectMany(n => _rules.NetworkRules(n, family))
                .Concat(endpoints.SelectMany(e => _rules.EndpointRules(e, family)))
                .Distinct()
                .ToList();
            PlanBase(family, tables, script, includeOwnedChains: false);
            foreach (var (table, ownedChains) in OwnedChainsByTable(family))
            {
                var listing = tables[table];
                foreach (var chain in ownedChains)
                {
                    var want = wanted.Where(r => r.Table == table && r.Chain == chain).Select(r => r.AppendLine).ToList();
                    var have = listing.RulesOf(chain).Select(r => r.Line).ToList();
                    if (listing.HasChain(chain) && SameRules(have, want)) continue;
                    // Declaring an existing chain empties it: the chain is rewritten whole, atomically with the table.
                    script.DeclareChain(table, chain);
                    foreach (var rule in wanted.Where(r => r.Table == table && r.Chain == chain)) script.Append(rule);
                }
            }
        },
        owners =>
        {
            owners.Clear();
            foreach (var network in networks) owners.Add(FirewallRuleBuilder.NetworkOwner(network.BridgeName));
            foreach (var endpoint in endpoints.Where(e => e.Ports.Count > 0)) owners.Add(FirewallRuleBuilder.EndpointOwner(endpoint.EndpointId));
        });
    }

    public FirewallReport Inspect()
    {
        lock (_gate)
        {
            var problems = new List<string>();
            var versionText = "";
            var backend = FirewallBackend.Unknown;
            try
            {
                versionText = Run([_options.IptablesCommand, "--version"], null).StandardOutput.Trim();
                backend = versionText.Contains("nf_tables", StringComparison.Ordinal) ? FirewallBackend.Nftables
                    : versionText.Contains("legacy", StringComparison.Ordinal) ? FirewallBackend.Legacy
                    : FirewallBackend.Unknown;
            }
            catch (FirewallCommandException e)
            {
                problems.Add($"cannot run {_options.IptablesCommand}: {e.Message}");
            }

            string? forwardPolicy = null;
            bool dockerUser = false, forwardJump = false, natJumps = false;
            bool? ipv6ForwardJump = null;
            var legacyAlso = false;
            try
            {
                var filterRead = Run([_options.IptablesCommand, "-w", "-t", IptablesTable.Filter, "-S"], null);
                legacyAlso = filterRead.StandardError.Contains("iptables-legacy tables present", StringComparison.Ordinal);
                var filter = IptablesListing.Parse(filterRead.StandardOutput);
                forwardPolicy = filter.PolicyOf("FORWARD");
                dockerUser = filter.RulesOf("FORWARD").Any(r => r.Line == FirewallRuleBuilder.DockerUserJumpLine);
                forwardJump = ForwardJumpInPlace(filter);
                var nat = List(IpFamily.V4, IptablesTable.Nat);
                natJumps = _rules.NatJumps.All(j => JumpsInto(nat, j).Count == 1 && JumpsInto(nat, j)[0].Line == j.AppendLine);
                if (_options.EnableIpv6) ipv6ForwardJump = ForwardJumpInPlace(List(IpFamily.V6, IptablesTable.Filter));
            }
            catch (FirewallCommandException e)
            {
                problems.Add($"cannot read the firewall: {e.Message}");
            }

            var ipForward = ReadSwitch("net.ipv4.ip_forward");
            var bridgeNfIptables = ReadSwitch("net.bridge.bridge-nf-call-iptables");
            var bridgeNfIp6tables = ReadSwitch("net.bridge.bridge-nf-call-ip6tables");

            if (legacyAlso)
                problems.Add("iptables-legacy tables exist next to skein's nf_tables rules: if dockerd uses iptables-legacy, "
                    + "its FORWARD DROP is not overridden by skein's accepts; run skein with the same iptables as dockerd");
            if (backend == FirewallBackend.Unknown && versionText.Length > 0)
                problems.Add($"cannot tell which backend '{versionText}' uses; skein must use the same one as dockerd");
            if (!forwardJump)
                problems.Add(dockerUser
                    ? $"FORWARD does not jump to {_chains.Forward} right after DOCKER-USER: skein's networks are not forwarded as intended"
                    : $"FORWARD does not jump to {_chains.Forward}: skein's networks are not forwarded as intended");
            if (!natJumps)
                problems.Add($"the nat table does not jump to {_chains.Dnat}/{_chains.Postrouting}: no egress masquerade and no published ports");
            if (ipv6ForwardJump == false)
                problems.Add($"ip6tables FORWARD does not jump to {_chains.Forward}: IPv6 on skein's networks is not forwarded as intended");

            var report = new FirewallReport(backend, versionText, forwardPolicy, dockerUser, forwardJump, natJumps,
                ipv6ForwardJump, ipForward, bridgeNfIptables, bridgeNfIp6tables, problems)
            {
                LegacyTablesAlsoPresent = legacyAlso,
            };
            foreach (var problem in problems) Log($"firewall: problem: {problem}");
            return report;
        }
    }

    /// <summary>Reads each table of each family, plans one batch per family, and runs it; retries once on a race.</summary>
    private void Transact(string operation, bool ensureBase, Action<IpFamily, IReadOnlyDictionary<string, IptablesListing>, RestoreScript> plan,
        Action<HashSet<string>>? updateOwners = null)
    {
        lock (_gate)
        {
            var seenOwners = _knownOwners is null ? new HashSet<string>(StringComparer.Ordinal) : null;
            var known = _knownOwners;
            _knownOwners = null; // unknown until this completes
            foreach (var family in Families)
            {
                for (var attempt = 1; ; attempt++)
                {
                    var tables = TablesOf(family).ToDictionary(t => t, t => List(family, t));
                    if (seenOwners is not null)
                    {
                        foreach (var listing in tables.Values)
                            foreach (var rule in listing.Rules)
                                if (rule.Comment is { } comment && _chains.IsSkeinChain(rule.Chain)) seenOwners.Add(comment);
                    }
                    var script = new RestoreScript();
                    if (ensureBase) PlanBase(family, tables, script, includeOwnedChains: true);
                    plan(family, tables, script);
                    if (script.IsEmpty) break;
                    try
                    {
                        Restore(family, script);
                        Log($"firewall: {operation}: {Name(family)}: {script.DeclarationCount} chain(s) created or emptied, "
                            + $"{script.DeletionCount} rule(s) removed, {script.AdditionCount} added");
                        break;
                    }
                    catch (FirewallCommandException e) when (_rules.BridgedShortcut
                        && (e.FailedInputLine ?? e.StandardError).Contains("physdev", StringComparison.Ordinal))
                    {
                        // A kernel without the physdev match (xt_physdev): keep the full walk rather than no firewall.
                        _rules.BridgedShortcut = false;
                        attempt = 0;
                        Log($"firewall: {operation}: {Name(family)}: the physdev match is refused ({e.Message}); "
                            + "bridged frames take the isolation walk too");
                    }
                    catch (FirewallCommandException e) when (attempt < Attempts)
                    {
                        // Someone (usually dockerd) changed a table between our read and our write; read again.
                        Log($"firewall: {operation}: {Name(family)}: retrying after: {e.Message}");
                    }
                }
            }
            var owners = known ?? seenOwners!;
            updateOwners?.Invoke(owners);
            _knownOwners = owners;
        }
    }

    /// <summary>Replaces one owner's rules: nothing when they are already exactly the wanted ones.</summary>
    private void ReplaceOwned(RestoreScript script, IReadOnlyDictionary<string, IptablesListing> tables, string owner, IEnumerable<FirewallRule> wanted)
    {
        var wantedList = wanted.Distinct().ToList();
        foreach (var (table, listing) in tables)
        {
            var have = listing.RulesWithComment(owner).Where(r => _chains.IsSkeinChain(r.Chain)).ToList();
            var want = wantedList.Where(r => r.Table == table).ToList();
            if (SameRules(have.Select(r => r.Line), want.Select(r => r.AppendLine))) continue;
            foreach (var rule in have) script.Delete(table, rule);
            foreach (var rule in want) script.Append(rule);
        }
    }

    /// <summary>Plans whatever is missing of skein's chains, their static content, and the jumps into them.</summary>
    private void PlanBase(IpFamily family, IReadOnlyDictionary<string, IptablesListing> tables, RestoreScript script, bool includeOwnedChains)
    {
        var filter = tables[IptablesTable.Filter];
        if (includeOwnedChains)
        {
            foreach (var chain in _chains.OwnedFilterChains)
                if (!filter.HasChain(chain)) script.DeclareChain(IptablesTable.Filter, chain);
        }
        foreach (var chain in _chains.StaticFilterChains)
        {
            var want = _rules.StaticRules(chain);
            var have = filter.RulesOf(chain).Select(r => r.Line);
            if (filter.HasChain(chain) && have.SequenceEqual(want.Select(r => r.AppendLine))) continue;
            script.DeclareChain(IptablesTable.Filter, chain);
            foreach (var rule in want) script.Append(rule);
        }
        PlanForwardJump(filter, script);
        if (_vxlan is { } vxlan) PlanVxlan(family, filter, script, vxlan);

        if (family != IpFamily.V4) return;
        var nat = tables[IptablesTable.Nat];
        if (includeOwnedChains)
        {
            foreach (var chain in _chains.OwnedNatChains)
                if (!nat.HasChain(chain)) script.DeclareChain(IptablesTable.Nat, chain);
        }
        foreach (var jump in _rules.NatJumps) PlanAppendedJump(nat, script, jump);

        if (!_options.PublishOnLoopback) return;
        var raw = tables[IptablesTable.Raw];
        var guard = _rules.StaticRules(_chains.LoopbackGuard);
        if (!raw.HasChain(_chains.LoopbackGuard) || !raw.RulesOf(_chains.LoopbackGuard).Select(r => r.Line).SequenceEqual(guard.Select(r => r.AppendLine)))
        {
            script.DeclareChain(IptablesTable.Raw, _chains.LoopbackGuard);
            foreach (var rule in guard) script.Append(rule);
        }
        PlanAppendedJump(raw, script, _rules.LoopbackGuardJump);
    }

    /// <summary>
    /// Exactly one jump from the built-in chain into the target, in exactly the wanted form: a jump left in another
    /// form (by an earlier configuration) is replaced, a duplicate removed.
    /// </summary>
    private static void PlanAppendedJump(IptablesListing listing, RestoreScript script, FirewallRule jump)
    {
        var present = JumpsInto(listing, jump);
        if (present.Count == 1 && present[0].Line == jump.AppendLine) return;
        var keep = present.FirstOrDefault(r => r.Line == jump.AppendLine);
        foreach (var other in present.Where(r => !ReferenceEquals(r, keep))) script.Delete(jump.Table, other);
        if (keep is null) script.Append(jump);
    }

    private static List<ListedRule> JumpsInto(IptablesListing listing, FirewallRule jump)
    {
        var target = jump.Spec[(jump.Spec.LastIndexOf("-j ", StringComparison.Ordinal))..];
        return listing.RulesOf(jump.Chain).Where(r => r.Line.EndsWith(" " + target, StringComparison.Ordinal)).ToList();
    }

    /// <summary>
    /// skein's FORWARD jump sits immediately after Docker's DOCKER-USER jump (so DOCKER-USER keeps precedence and
    /// skein's isolation runs before Docker's per-bridge accepts), or anywhere when there is no DOCKER-USER.
    /// </summary>
    private bool ForwardJumpInPlace(IptablesListing filter)
    {
        var forward = filter.RulesOf("FORWARD");
        var ours = IndexesOf(forward, _rules.ForwardJumpLine);
        var dockerUser = forward.ToList().FindIndex(r => r.Line == FirewallRuleBuilder.DockerUserJumpLine);
        return ours.Count == 1 && (dockerUser < 0 || ours[0] == dockerUser + 1);
    }

    private void PlanForwardJump(IptablesListing filter, RestoreScript script)
    {
        if (ForwardJumpInPlace(filter)) return;
        var forward = filter.RulesOf("FORWARD");
        var ours = IndexesOf(forward, _rules.ForwardJumpLine);
        var dockerUser = forward.ToList().FindIndex(r => r.Line == FirewallRuleBuilder.DockerUserJumpLine);
        foreach (var index in ours) script.Delete(IptablesTable.Filter, forward[index]);
        // Positions are 1-based and counted after the deletions above.
        var position = dockerUser < 0 ? 1 : dockerUser - ours.Count(i => i < dockerUser) + 2;
        script.Insert(IptablesTable.Filter, "FORWARD", position, $"-j {_chains.Forward}");
    }

    private static List<int> IndexesOf(IReadOnlyList<ListedRule> rules, string line)
    {
        var indexes = new List<int>();
        for (var i = 0; i < rules.Count; i++)
            if (rules[i].Line == line) indexes.Add(i);
        return indexes;
    }

    /// <summary>Rule order inside owned chains carries no meaning, so they compare as multisets.</summary>
    private static bool SameRules(IEnumerable<string> have, IEnumerable<string> want) =>
        have.Order(StringComparer.Ordinal).SequenceEqual(want.Order(StringComparer.Ordinal), StringComparer.Ordinal);

    private IEnumerable<(string Table, IReadOnlyList<string> Chains)> OwnedChainsByTable(IpFamily family)
    {
        yield return (IptablesTable.Filter, _chains.OwnedFilterChains);
        if (family == IpFamily.V4) yield return (IptablesTable.Nat, _chains.OwnedNatChains);
    }

    private IReadOnlyList<string> TablesOf(IpFamily family) =>
        family != IpFamily.V4 ? [IptablesTable.Filter]
        : _options.PublishOnLoopback ? [IptablesTable.Filter, IptablesTable.Nat, IptablesTable.Raw]
        : [IptablesTable.Filter, IptablesTable.Nat];

    private static string Name(IpFamily family) => family == IpFamily.V4 ? "ipv4" : "ipv6";

    private IptablesListing List(IpFamily family, string table)
    {
        var command = family == IpFamily.V4 ? _options.IptablesCommand : _options.Ip6tablesCommand;
        return IptablesListing.Parse(Run([command, "-w", "-t", table, "-S"], null).StandardOutput);
    }

    private void Restore(IpFamily family, RestoreScript script)
    {
        var command = family == IpFamily.V4 ? _options.IptablesRestoreCommand : _options.Ip6tablesRestoreCommand;
        Run([command, "--noflush", "-w"], script.Render());
    }

    private CommandResult Run(IReadOnlyList<string> command, string? input)
    {
        var argv = _options.CommandPrefix.Concat(command).ToList();
        var result = _runner.Run(argv, input, _options.CommandTimeout);
        if (result.ExitCode == 0) return result;
        string? failedLine = null;
        if (input is not null && FailedLinePattern().Match(result.StandardError) is { Success: true } match
            && int.TryParse(match.Groups[1].Value, out var lineNumber))
        {
            var lines = input.Split('\n');
            if (lineNumber >= 1 && lineNumber <= lines.Length) failedLine = lines[lineNumber - 1];
        }
        throw new FirewallCommandException(string.Join(' ', argv), result.ExitCode, result.StandardError, failedLine);
    }

    private bool? ReadSwitch(string name)
    {
        string? value;
        try
        {
            value = _options.ReadSysctl is { } read ? read(name) : ReadOwnSysctl(name);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return null;
        }
        return value?.Trim() switch
        {
            "1" => true,
            "0" => false,
            _ => null,
        };
    }

    private static string? ReadOwnSysctl(string name)
    {
        var path = "/proc/sys/" + name.Replace('.', '/');
        return File.Exists(path) ? File.ReadAllText(path) : null;
    }

    private void Log(string line) => _options.Log?.Invoke(line);

    [GeneratedRegex(@"line (\d+) failed")]
    private static partial Regex FailedLinePattern();
}
