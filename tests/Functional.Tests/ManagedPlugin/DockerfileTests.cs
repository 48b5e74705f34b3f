using Skein.Functional.Tests.Infrastructure;
using Xunit.Abstractions;

namespace Skein.Functional.Tests.ManagedPlugin;

/// <summary>
/// The Dockerfile's runtime stage, built with no registry: BuildKit with --target runtime and
/// SKEIN_PUBLISH=prebuilt needs neither the SDK image nor Debian's mirrors, only a local image named
/// debian:bookworm-slim (imported from a rootfs made of this machine's bookworm files) and the NativeAOT binary.
/// The image must run skein (help, and serve on a socket with its firewall in place) and hold the same files as
/// the rootfs plugin-config/build.sh assembles.
/// </summary>
public class DockerfileTests(DockerOnlyHost host, ITestOutputHelper output) : IClassFixture<DockerOnlyHost>
{
    private const string BaseImage = "debian:bookworm-slim";
    private const string SdkImage = "mcr.microsoft.com/dotnet/sdk:10.0";
    private const string Tag = "skein-rootfs:offline";

    [SkippableFact]
    public async Task Runtime_stage_builds_offline_from_a_prebuilt_binary_and_runs_skein()
    {
        host.RequireReady();
        var context = Path.Combine(host.Dir, "docker-context");
        Directory.CreateDirectory(Path.Combine(context, "plugin-config"));
        Directory.CreateDirectory(Path.Combine(context, "publish"));
        File.Copy(Path.Combine(host.RepoRoot, "Dockerfile"), Path.Combine(context, "Dockerfile"));
        File.Copy(Path.Combine(host.RepoRoot, ".dockerignore"), Path.Combine(context, ".dockerignore"));
        foreach (var file in new[] { "assemble-rootfs.sh", "config.json" })
            File.Copy(Path.Combine(host.RepoRoot, "plugin-config", file), Path.Combine(context, "plugin-config", file));
        File.Copy(host.Binary, Path.Combine(context, "publish", "skein"));
        // Context noise the .dockerignore must keep out of the build.
        Directory.CreateDirectory(Path.Combine(context, "src", "Driver", "obj"));
        File.WriteAllText(Path.Combine(context, "src", "Driver", "obj", "junk"), "x");

        var baseRoot = Path.Combine(host.Dir, "base-rootfs");
        var script = Path.Combine(host.RepoRoot, "tests", "Functional.Tests", "ManagedPlugin", "make-base-rootfs.sh");
        (await Shell.RunAsync("/bin/bash", [script, baseRoot], TimeSpan.FromMinutes(2))).EnsureOk();
        (await host.WithDockerHostAsync("/bin/bash", ["-c", $"tar -C '{baseRoot}' --numeric-owner -c . | /usr/bin/docker import - {BaseImage}"], TimeSpan.FromMinutes(2))).EnsureOk();

        var build = await host.WithDockerHostAsync("/usr/bin/docker",
            ["build", "--target", "runtime", "--build-arg", "SKEIN_PUBLISH=prebuilt", "-t", Tag, "--progress", "plain", context],
            TimeSpan.FromMinutes(6), ("DOCKER_BUILDKIT", "1"));
        Assert.True(build.Ok, "offline build of the runtime stage failed:\n" + build.Output);
        Assert.False((await host.DockerAsync("image", "inspect", SdkImage)).Ok, "the SDK image was pulled or built: --target runtime should not need it");

        var help = await host.DockerAsync("run", "--rm", "--network", "none", Tag, "--help");
        Assert.True(help.Ok, "skein --help in the image failed: " + help.Output);
        Assert.Contains("serve", help.Stdout);
        var iptables = await host.DockerAsync("run", "--rm", "--network", "none", "--entrypoint", "/usr/sbin/iptables", Tag, "-V");
        Assert.True(iptables.Ok, iptables.Output);
        Assert.Contains("nf_tables", iptables.Stdout);

        // serve (the default command) in a network namespace of its own, its plugin directory shared with us.
        var sockets = Path.Combine(host.Dir, "image-plugins");
        Directory.CreateDirectory(sockets);
        var server = "skein-image-serve";
        try
        {
            await host.DockerOkAsync("run", "-d", "--name", server, "--network", "none", "--cap-add", "NET_ADMIN", "-v", $"{sockets}:/run/docker/plugins", Tag);
            var socket = Path.Combine(sockets, "skein.sock");
            var answers = await Shell.EventuallyAsync(() => ManagedPluginHost.SocketAnswersAsync(socket), TimeSpan.FromSeconds(20));
            Assert.True(answers, $"skein serve in the image did not answer on {socket}; logs:\n{(await host.DockerAsync("logs", server)).Output}");
            var ready = await Shell.EventuallyAsync(async () => (await host.DockerAsync("logs", server)).Output.Contains(" ready"), TimeSpan.FromSeconds(20));
            Assert.True(ready, "skein in the image did not finish start-up:\n" + (await host.DockerAsync("logs", server)).Output);
            // Its iptables (the image's own) programmed skein's chains in the container's namespace.
            var rules = await host.DockerAsync("run", "--rm", "--network", $"container:{server}", "--cap-add", "NET_ADMIN", "--entrypoint", "/usr/sbin/iptables-save", Tag);
            Assert.True(rules.Ok, rules.Output);
            Assert.Contains(":SKEIN-", rules.Stdout);
        }
        finally
        {
            await host.DockerAsync("rm", "-f", server);
        }

        // Same tree as build.sh's rootfs (assembled here from the same host files): compare everything under /usr and /etc/ssl.
        var hostRootfs = Path.Combine(host.Dir, "host-rootfs");
        (await Shell.RunAsync("/bin/bash", [Path.Combine(host.RepoRoot, "plugin-config", "assemble-rootfs.sh"), host.Binary, hostRootfs], TimeSpan.FromMinutes(2))).EnsureOk();
        var exported = await host.WithDockerHostAsync("/bin/bash",
            ["-c", $"id=$(/usr/bin/docker create {Tag}) && /usr/bin/docker export \"$id\" | tar -t; rc=$?; /usr/bin/docker rm \"$id\" >/dev/null; exit $rc"], TimeSpan.FromMinutes(2));
        exported.EnsureOk();
        var inImage = exported.Stdout.Split('\n', StringSplitOptions.RemoveEmptyEntries)
            .Select(p => p.TrimStart('.', '/').TrimEnd('/'))
            .Where(p => p.StartsWith("usr/", StringComparison.Ordinal) || p.StartsWith("etc/ssl/", StringComparison.Ordinal))
            .ToHashSet();
        var fromScript = Directory.EnumerateFileSystemEntries(hostRootfs, "*", SearchOption.AllDirectories)
            .Select(p => Path.GetRelativePath(hostRootfs, p))
            .Where(p => p.StartsWith("usr/", StringComparison.Ordinal) || p.StartsWith("etc/ssl/", StringComparison.Ordinal))
            .ToHashSet();
        Assert.True(inImage.SetEquals(fromScript),
            $"image and build.sh rootfs differ: only in image [{string.Join(", ", inImage.Except(fromScript).Take(10))}], only in rootfs [{string.Join(", ", fromScript.Except(inImage).Take(10))}]");

        var size = long.Parse(await host.DockerOkAsync("image", "inspect", "-f", "{{.Size}}", Tag));
        output.WriteLine($"FIGURE runtime image (offline build): {size / 1024} KiB, {inImage.Count} files under /usr");
    }
}
