using System.Globalization;
using System.Net;

namespace Skein.Ipam.Addressing;

/// <summary>
/// An IPv4 or IPv6 network prefix (CIDR). Addresses are held as one unsigned 128-bit number
/// (IPv4 in the low 32 bits), so every operation is plain integer arithmetic for both families.
/// An "ordinal" is an address's offset from the network address.
/// </summary>
public readonly struct IpPrefix : IEquatable<IpPrefix>, IComparable<IpPrefix>
{
    private readonly UInt128 _network;
    private readonly byte _length;
    private readonly bool _isV6;

    private IpPrefix(UInt128 network, int length, bool isV6)
    {
        _network = network;
        _length = (byte)length;
        _isV6 = isV6;
    }

    public bool IsV6 => _isV6;
    public int Length => _length;
    public int MaxLength => _isV6 ? 128 : 32;
    /// <summary>Number of host bits: the prefix spans 2^HostBits addresses.</summary>
    public int HostBits => MaxLength - _length;
    public UInt128 NetworkNumber => _network;
    public IPAddress Network => IpAddressText.FromNumber(_network, _isV6);
    public IPAddress LastAddress => IpAddressText.FromNumber(_network + LastOrdinal, _isV6);
    /// <summary>The all-ones host address; IPv4 only (IPv6 has no broadcast).</summary>
    public IPAddress Broadcast => _isV6
        ? throw new InvalidOperationException($"{this} is IPv6, which has no broadcast address")
        : LastAddress;
    /// <summary>Highest ordinal: 2^HostBits - 1 (saturates at UInt128.MaxValue for ::/0).</summary>
    public UInt128 LastOrdinal => HostBits == 128 ? UInt128.MaxValue : (UInt128.One << HostBits) - 1;

    public static IpPrefix Create(IPAddress network, int length)
    {
        bool isV6 = IpAddressText.IsV6(network);
        int max = isV6 ? 128 : 32;
        if (length < 0 || length > max)
            throw new ArgumentOutOfRangeException(nameof(length), $"prefix length {length} is outside 0..{max}");
        UInt128 number = IpAddressText.ToNumber(network);
        if ((number & HostMask(length, max)) != 0)
            throw new ArgumentException($"{IpAddressText.Format(network)}/{length} has host bits set", nameof(network));
        return new IpPrefix(number, length, isV6);
    }

    /// <summary>The prefix of the given length that contains the address (host bits cleared).</summary>
    public static IpPrefix Containing(IPAddress address, int length)
    {
        bool isV6 = IpAddressText.IsV6(address);
        int max = isV6 ? 128 : 32;
        if (length < 0 || length > max)
            throw new ArgumentOutOfRangeException(nameof(length), $"prefix length {length} is outside 0..{max}");
        return new IpPrefix(IpAddressText.ToNumber(address) & ~HostMask(length, max), length, isV6);
    }

    /// <summary>
    /// Reads "address/length". With <paramref name="allowHostBits"/> false a prefix whose host bits
    /// are set is refused (naming the network it probably meant); with true it is masked, as Go's
    /// net.ParseCIDR does for Docker's own IPAM.
    /// </summary>
    public static bool TryParse(ReadOnlySpan<char> text, bool allowHostBits, out IpPrefix prefix, out string error)
    {
        prefix = default;
        int slash = text.IndexOf('/');
        if (slash < 0)
        {
            error = "a CIDR needs a '/' and a prefix length, e.g. 10.20.0.0/16";
            return false;
        }
        if (!IpAddressText.TryParse(text[..slash], out var address, out error))
            return false;
        var lengthText = text[(slash + 1)..];
        bool isV6 = IpAddressText.IsV6(address);
        int max = isV6 ? 128 : 32;
        if (lengthText.IsEmpty || lengthText.Length > 3 || (lengthText.Length > 1 && lengthText[0] == '0'))
        {
            error = $"the prefix length must be a number from 0 to {max} without leading zeros";
            return false;
        }
        int length = 0;
        foreach (char c in lengthText)
        {
            if (c is < '0' or > '9')
            {
                error = $"the prefix length must be a number from 0 to {max}";
                return false;
            }
            length = length * 10 + (c - '0');
        }
        if (length > max)
        {
            error = $"prefix length {length} is larger than {max}";
            return false;
        }
        UInt128 number = IpAddressText.ToNumber(address);
        UInt128 hostMask = HostMask(length, max);
        if ((number & hostMask) != 0 && !allowHostBits)
        {
            var masked = new IpPrefix(number & ~hostMask, length, isV6);
            error = $"host bits are set (the network is {masked})";
            return false;
        }
        prefix = new IpPrefix(number & ~hostMask, length, isV6);
        error = "";
        return true;
    }

    /// <summary>Parses a canonical CIDR or throws an Invalid error naming <paramref name="what"/>.</summary>
    public static IpPrefix Parse(string text, string what, bool allowHostBits = false)
    {
        if (!TryParse(text, allowHostBits, out var prefix, out var error))
            throw SkeinException.Invalid($"{what}: '{IpAddressText.Printable(text)}' is not a valid CIDR ({error})");
        return prefix;
    }

    public bool Contains(IPAddress address)
    {
        if (IpAddressText.IsV6(address) != _isV6)
            return false;
        return (IpAddressText.ToNumber(address) & ~HostMask(_length, MaxLength)) == _network;
    }

    public bool Contains(IpPrefix other) =>
        other._isV6 == _isV6 && other._length >= _length && (other._network & ~HostMask(_length, MaxLength)) == _network;

    /// <summary>Two prefixes of one family overlap exactly when one contains the other.</summary>
    public bool Overlaps(IpPrefix other) => Contains(other) || other.Contains(this);

    public IPAddress AddressAt(UInt128 ordinal)
    {
        if (ordinal > LastOrdinal)
            throw new ArgumentOutOfRangeException(nameof(ordinal), $"ordinal {ordinal} is outside {this}");
        return IpAddressText.FromNumber(_network + ordinal, _isV6);
    }

    public UInt128 OrdinalOf(IPAddress address)
    {
        if (!Contains(address))
            throw new ArgumentOutOfRangeException(nameof(address), $"{IpAddressText.Format(address)} is not inside {this}");
        return IpAddressText.ToNumber(address) - _network;
    }

    /// <summary>Number of sub-prefixes of <paramref name="length"/> (saturating for absurd splits).</summary>
    public UInt128 BlockCount(int length)
    {
        CheckSubLength(length);
        int bits = length - _length;
        return bits >= 128 ? UInt128.MaxValue : UInt128.One << bits;
    }

    /// <summary>The index-th sub-prefix of the given length, counting from the network address.</summary>
    public IpPrefix BlockAt(int length, UInt128 index)
    {
        CheckSubLength(length);
        if (index >= BlockCount(length) && length - _length < 128)
            throw new ArgumentOutOfRangeException(nameof(index), $"{this} has no /{length} number {index}");
        int shift = MaxLength - length;
        UInt128 offset = shift >= 128 ? 0 : index << shift;
        return new IpPrefix(_network + offset, length, _isV6);
    }

    /// <summary>Index of the /length sub-prefix that holds the address.</summary>
    public UInt128 BlockIndexOf(IPAddress address, int length)
    {
        CheckSubLength(length);
        UInt128 ordinal = OrdinalOf(address);
        int shift = MaxLength - length;
        return shift >= 128 ? 0 : ordinal >> shift;
    }

    /// <summary>All sub-prefixes of the given length in address order, produced lazily.</summary>
    public IEnumerable<IpPrefix> Subdivide(int length)
    {
        CheckSubLength(length);
        UInt128 count = BlockCount(length);
        for (UInt128 i = 0; i < count; i++)
        {
            yield return BlockAt(length, i);
            if (i == UInt128.MaxValue)
                yield break;
        }
    }

    /// <summary>Store key segment: "10.20.0.0-16", or 32 hex digits + "-64" for IPv6 (no colons).</summary>
    public string ToKeySegment()
    {
        string length = _length.ToString(CultureInfo.InvariantCulture);
        if (!_isV6)
            return $"{IpAddressText.Format(Network)}-{length}";
        return $"{((ulong)(_network >> 64)).ToString("x16", CultureInfo.InvariantCulture)}{((ulong)_network).ToString("x16", CultureInfo.InvariantCulture)}-{length}";
    }

    public static bool TryParseKeySegment(string segment, out IpPrefix prefix)
    {
        prefix = default;
        int dash = segment.LastIndexOf('-');
        if (dash <= 0)
            return false;
        string head = segment[..dash];
        string tail = segment[(dash + 1)..];
        if (head.Length == 32 && !head.Contains('.'))
        {
            if (!UInt128.TryParse(head, NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out var number)
                || !int.TryParse(tail, NumberStyles.None, CultureInfo.InvariantCulture, out int length) || length > 128)
                return false;
            if ((number & HostMask(length, 128)) != 0)
                return false;
            prefix = new IpPrefix(number, length, true);
            return true;
        }
        return TryParse($"{head}/{tail}", allowHostBits: false, out prefix, out _) && !prefix.IsV6;
    }

    public override string ToString() =>
        $"{IpAddressText.Format(Network)}/{_length.ToString(CultureInfo.InvariantCulture)}";

    public bool Equals(IpPrefix other) => _network == other._network && _length == other._length && _isV6 == other._isV6;
    public override bool Equals(object? obj) => obj is IpPrefix other && Equals(other);
    public override int GetHashCode() => HashCode.Combine(_network, _length, _isV6);
    public static bool operator ==(IpPrefix left, IpPrefix right) => left.Equals(right);
    public static bool operator !=(IpPrefix left, IpPrefix right) => !left.Equals(right);

    /// <summary>IPv4 before IPv6, then by network address, then shorter prefixes first.</summary>
    public int CompareTo(IpPrefix other)
    {
        int family = _isV6.CompareTo(other._isV6);
        if (family != 0)
            return family;
        int network = _network.CompareTo(other._network);
        return network != 0 ? network : _length.CompareTo(other._length);
    }

    private void CheckSubLength(int length)
    {
        if (length < _length || length > MaxLength)
            throw new ArgumentOutOfRangeException(nameof(length), $"/{length} is not a sub-prefix length of {this}");
    }

    private static UInt128 HostMask(int length, int max)
    {
        int hostBits = max - length;
        if (hostBits == 0)
            return 0;
        return hostBits == 128 ? UInt128.MaxValue : (UInt128.One << hostBits) - 1;
    }
}
