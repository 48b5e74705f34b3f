namespace Skein.Driver.Firewall;

/// <summary>One rule as <c>iptables -S</c> prints it: <c>-A CHAIN spec...</c>.</summary>
internal sealed record ListedRule(string Chain, string Line, string? Comment)
{
    /// <summary>The same rule as a delete command, valid in an iptables-restore batch.</summary>
    public string DeleteLine => "-D" + Line[2..];
}

/// <summary>One table as <c>iptables -w -t TABLE -S</c> printed it: its chains, policies and rules in order.</summary>
internal sealed class IptablesListing
{
    private readonly Dictionary<string, List<ListedRule>> _rulesByChain = new(StringComparer.Ordinal);
    private readonly Dictionary<string, string> _policies = new(StringComparer.Ordinal);

    public IReadOnlyCollection<string> Chains => _rulesByChain.Keys;
    public IReadOnlyList<ListedRule> Rules { get; }

    private IptablesListing(List<ListedRule> rules)
    {
        Rules = rules;
    }

    public static IptablesListing Empty { get; } = new([]);

    public bool HasChain(string chain) => _rulesByChain.ContainsKey(chain);

    public IReadOnlyList<ListedRule> RulesOf(string chain) =>
        _rulesByChain.TryGetValue(chain, out var rules) ? rules : [];

    public string? PolicyOf(string builtinChain) => _policies.GetValueOrDefault(builtinChain);

    public IEnumerable<ListedRule> RulesWithComment(string comment) =>
        Rules.Where(r => string.Equals(r.Comment, comment, StringComparison.Ordinal));

    public static IptablesListing Parse(string text)
    {
        var rules = new List<ListedRule>();
        var listing = new IptablesListing(rules);
        foreach (var raw in text.Split('\n'))
        {
            var line = raw.TrimEnd('\r', ' ');
            if (line.Length == 0) continue;
            var tokens = Tokenize(line);
            if (tokens.Count < 2) continue;
            switch (tokens[0])
            {
                case "-P":
                    listing._rulesByChain.TryAdd(tokens[1], []);
                    if (tokens.Count >= 3) listing._policies[tokens[1]] = tokens[2];
                    break;
                case "-N":
                    listing._rulesByChain.TryAdd(tokens[1], []);
                    break;
                case "-A":
                    var rule = new ListedRule(tokens[1], line, CommentOf(tokens));
                    rules.Add(rule);
                    if (!listing._rulesByChain.TryGetValue(tokens[1], out var chainRules))
                        listing._rulesByChain[tokens[1]] = chainRules = [];
                    chainRules.Add(rule);
                    break;
            }
        }
        return listing;
    }

    private static string? CommentOf(List<string> tokens)
    {
        for (var i = 0; i + 1 < tokens.Count; i++)
            if (tokens[i] == "--comment") return tokens[i + 1];
        return null;
    }

    /// <summary>Splits a rule line into words the way iptables-save quotes them: double quotes, backslash escapes.</summary>
    internal static List<string> Tokenize(string line)
    {
        var tokens = new List<string>();
        var current = new System.Text.StringBuilder();
        var inQuotes = false;
        var hasToken = false;
        for (var i = 0; i < line.Length; i++)
        {
            var c = line[i];
            if (c == '\\' && i + 1 < line.Length)
            {
                current.Append(line[++i]);
                hasToken = true;
            }
            else if (c == '"')
            {
                inQuotes = !inQuotes;
                hasToken = true;
            }
            else if (c == ' ' && !inQuotes)
            {
                if (hasToken) tokens.Add(current.ToString());
                current.Clear();
                hasToken = false;
            }
            else
            {
                current.Append(c);
                hasToken = true;
            }
        }
        if (hasToken) tokens.Add(current.ToString());
        return tokens;
    }
}
