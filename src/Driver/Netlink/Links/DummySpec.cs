namespace Skein.Driver.Netlink;

/// <summary>A dummy device (needs the kernel's dummy module). It has no kind-specific data.</summary>
public sealed record DummySpec(string Name) : LinkSpec(Name)
{
    public override string Kind => "dummy";
}
