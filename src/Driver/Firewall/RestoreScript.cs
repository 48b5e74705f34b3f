using System.Text;

namespace Skein.Driver.Firewall;

/// <summary>
/// An <c>iptables-restore --noflush</c> batch: each table's section is committed atomically. Within a section,
/// chain declarations come first (a declared chain that exists is flushed, one that does not is created), then
/// deletions, then additions in the order given.
/// </summary>
internal sealed class RestoreScript
{
    private sealed class Section
    {
        public readonly List<string> Declarations = [];
        public readonly List<string> Deletions = [];
        public readonly List<string> Additions = [];
        public bool IsEmpty => Declarations.Count == 0 && Deletions.Count == 0 && Additions.Count == 0;
    }

    // filter before nat, always, so golden texts are stable.
    private readonly SortedDictionary<string, Section> _sections = new(StringComparer.Ordinal);

    public int DeclarationCount => _sections.Values.Sum(s => s.Declarations.Count);
    public int DeletionCount => _sections.Values.Sum(s => s.Deletions.Count);
    public int AdditionCount => _sections.Values.Sum(s => s.Additions.Count);
    public bool IsEmpty => _sections.Values.All(s => s.IsEmpty);

    /// <summary>Creates the chain, or empties it when it exists.</summary>
    public void DeclareChain(string table, string chain) => SectionOf(table).Declarations.Add($":{chain} - [0:0]");

    public void Delete(string table, ListedRule rule) => SectionOf(table).Deletions.Add(rule.DeleteLine);

    public void Append(FirewallRule rule) => SectionOf(rule.Table).Additions.Add(rule.AppendLine);

    /// <summary>A command line run after the additions so far, e.g. deleting an emptied chain.</summary>
    public void AppendRaw(string table, string line) => SectionOf(table).Additions.Add(line);

    /// <summary>Inserts at a 1-based position of a chain.</summary>
    public void Insert(string table, string chain, int position, string spec) =>
        SectionOf(table).Additions.Add($"-I {chain} {position} {spec}");

    public string Render()
    {
        var text = new StringBuilder();
        foreach (var (table, section) in _sections)
        {
            if (section.IsEmpty) continue;
            text.Append('*').Append(table).Append('\n');
            foreach (var line in section.Declarations) text.Append(line).Append('\n');
            foreach (var line in section.Deletions) text.Append(line).Append('\n');
            foreach (var line in section.Additions) text.Append(line).Append('\n');
            text.Append("COMMIT\n");
        }
        return text.ToString();
    }

    private Section SectionOf(string table)
    {
        if (!_sections.TryGetValue(table, out var section)) _sections[table] = section = new Section();
        return section;
    }
}
