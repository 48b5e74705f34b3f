using System.Net;

namespace Skein.Ipam.Allocation;

/// <summary>
/// One endpoint address request (a MAC, perhaps a wanted address) waiting to be served together with the other
/// requests of its pool (group commit). Its answer is the address, null when the pool went into journal mode
/// while it waited (the caller then asks the journal), or the failure that is this request's own.
/// </summary>
internal sealed class EndpointRequest(PoolId id, string mac, IPAddress? wanted)
{
    private readonly TaskCompletionSource<IPAddress?> _answer = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public PoolId Id { get; } = id;
    public string Mac { get; } = mac;
    public IPAddress? Wanted { get; } = wanted;

    /// <summary>
    /// The address staged for this request in the group write last sent for it; what the store holds for it if that
    /// write applied unseen.
    /// </summary>
    public IPAddress? Staged { get; set; }

    /// <summary>Set by the queue when a lock holder takes the request into its batch.</summary>
    public bool Taken { get; set; }

    public Task<IPAddress?> Answer => _answer.Task;
    public bool Answered => _answer.Task.IsCompleted;

    public void Succeed(IPAddress? address) => _answer.TrySetResult(address);
    public void Fail(Exception error) => _answer.TrySetException(error);
}

/// <summary>
/// The endpoint requests of one pool that wait for the pool's lock, in arrival order. Whoever holds the lock takes
/// all of them (up to a transaction's worth) and serves them with one conditional write: requests that arrive while
/// a commit is in flight share the next one, and a lone request never waits for company.
/// </summary>
internal sealed class EndpointRequestQueue
{
    private readonly Lock _gate = new();
    private readonly List<EndpointRequest> _waiting = [];

    public void Add(EndpointRequest request)
    {
        lock (_gate)
            _waiting.Add(request);
    }

    /// <summary>The oldest waiting requests, at most <paramref name="max"/>; they are marked taken.</summary>
    public List<EndpointRequest> Take(int max)
    {
        lock (_gate)
        {
            var taken = _waiting.Take(max).ToList();
            _waiting.RemoveRange(0, taken.Count);
            foreach (var request in taken)
                request.Taken = true;
            return taken;
        }
    }

    /// <summary>Removes a request whose caller gave up; false when a lock holder has taken it already.</summary>
    public bool Withdraw(EndpointRequest request)
    {
        lock (_gate)
            return !request.Taken && _waiting.Remove(request);
    }
}
