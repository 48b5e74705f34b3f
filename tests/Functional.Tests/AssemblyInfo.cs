// The end-to-end classes each run a dockerd and containers on a 2-core machine; running them one
// after another keeps timings (and pings with short timeouts) honest.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
