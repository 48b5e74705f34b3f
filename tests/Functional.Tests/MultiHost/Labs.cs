using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>Three hosts sharing a real etcd.</summary>
public sealed class EtcdLab() : MultiHostLab(LabStore.Etcd, hosts: 3);

/// <summary>Two hosts sharing the in-test Consul API server.</summary>
public sealed class ConsulLab() : MultiHostLab(LabStore.Consul, hosts: 2);

/// <summary>Two hosts on etcd, addresses reclaimed 60 s (the shortest skein accepts) after a node's liveness lapsed.</summary>
public sealed class ReclaimLab() : MultiHostLab(LabStore.Etcd, hosts: 2, reclaimAfterSeconds: 60);

/// <summary>Two hosts on etcd, built and removed inside one test.</summary>
public sealed class SmallEtcdLab() : MultiHostLab(LabStore.Etcd, hosts: 2);
