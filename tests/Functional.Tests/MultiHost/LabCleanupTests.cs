using Skein.Functional.Tests.Infrastructure;

namespace Skein.Functional.Tests.MultiHost;

/// <summary>
/// The lab leaves nothing behind after its test process died (swept the way the next run does). The normal
/// disposal is checked at the end of <see cref="HostFailureTests"/>, after a host was killed.
/// </summary>
public sealed class LabCleanupTests
{
    [SkippableFact]
    public async Task A_lab_whose_test_process_died_is_removed_by_the_next_run_without_leaving_a_namespace_process_mount_or_file()
    {
        var crashed = new SmallEtcdLab();
        await crashed.InitializeAsync();
        try
        {
            crashed.RequireReady();
            var pids = await PopulateAsync(crashed);

            // as if the test process had been killed: its owner pid is gone, everything still runs
            var dead = (await Shell.RunAsync("/bin/sh", "-c", "echo $$")).EnsureOk().Stdout.Trim();
            File.WriteAllText(Path.Combine(crashed.Dir, "owner"), dead);
            (await Shell.RunAsync("/bin/bash", [MultiHostLab.Script, "sweep", MultiHostLab.Prefix], TimeSpan.FromSeconds(180))).EnsureOk();
            await AssertNothingLeftAsync(crashed, pids);
        }
        finally
        {
            await crashed.DisposeAsync();
        }
    }

    /// <summary>A network on both hosts with a container each; returns the pids that must be gone afterwards.</summary>
    internal static async Task<List<int>> PopulateAsync(MultiHostLab lab)
    {
        var scope = lab.Scope(); // not disposed: the lab's own removal must cope with what is left
        var net = await scope.NetworkOnAllAsync("gone", ["--subnet", "10.28.0.0/16"]);
        var pids = new List<int>();
        foreach (var host in lab.Hosts)
        {
            var c = await scope.RunAsync(host, "c" + host.Index, net);
            pids.Add(int.Parse(await host.DockerOkAsync("inspect", "-f", "{{.State.Pid}}", c.Name)));
            pids.Add(await host.DockerdPidAsync());
            pids.Add(host.Skein.Pid ?? throw new InvalidOperationException($"skein of {host.Name} is not running"));
        }
        Assert.True(Directory.Exists(lab.Dir));
        Assert.NotEmpty(LabNamespaces(lab));
        Assert.NotEmpty(LabProcesses(lab));
        return pids;
    }

    internal static async Task AssertNothingLeftAsync(MultiHostLab lab, List<int> pids)
    {
        Assert.Empty(LabNamespaces(lab));
        Assert.False(Directory.Exists(lab.Dir), $"{lab.Dir} still exists");
        var alive = await Task.WhenAll(pids.Select(async p => await Shell.EventuallyAsync(() => Task.FromResult(!File.Exists($"/proc/{p}/cmdline") || IsZombie(p)), TimeSpan.FromSeconds(5)) ? -1 : p));
        Assert.True(alive.All(p => p < 0), "processes of the lab still run: " + string.Join(", ", alive.Where(p => p >= 0)));
        Assert.Empty(LabProcesses(lab));
        var mounts = File.ReadAllLines("/proc/self/mountinfo").Where(l => l.Contains(lab.Dir, StringComparison.Ordinal)).ToList();
        Assert.True(mounts.Count == 0, "mounts of the lab remain:\n" + string.Join('\n', mounts));
    }

    private static bool IsZombie(int pid)
    {
        try
        {
            var stat = File.ReadAllText($"/proc/{pid}/stat");
            return stat[(stat.LastIndexOf(')') + 2)..].StartsWith('Z');
        }
        catch (IOException)
        {
            return true;
        }
    }

    private static List<string> LabNamespaces(MultiHostLab lab) =>
        Directory.Exists("/run/netns") ? Directory.GetFiles("/run/netns", lab.Id + "-*").ToList() : [];

    private static List<string> LabProcesses(MultiHostLab lab)
    {
        var found = new List<string>();
        foreach (var dir in Directory.GetDirectories("/proc"))
        {
            if (!int.TryParse(Path.GetFileName(dir), out var pid) || pid == Environment.ProcessId)
                continue;
            try
            {
                var cmdline = File.ReadAllText(Path.Combine(dir, "cmdline")).Replace('\0', ' ');
                if (cmdline.Contains(lab.Dir + "/", StringComparison.Ordinal) && !IsZombie(pid))
                    found.Add($"{pid}: {cmdline}");
            }
            catch (IOException)
            {
            }
            catch (UnauthorizedAccessException)
            {
            }
        }
        return found;
    }
}
