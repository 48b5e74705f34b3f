using Microsoft.Extensions.Logging;
using Skein.Driver.Network.Kernel;

namespace Skein.Driver.Network.Setup;

/// <summary>
/// One named kernel step. Apply brings one piece of kernel state to what the record says (doing nothing when it
/// already is) and returns how to undo what it changed, or null when it changed nothing that needs undoing.
/// </summary>
public sealed record SetupStep<TContext>(string Name, Func<TContext, Action?> Apply);

/// <summary>Runs steps in order; when one fails, undoes the earlier ones in reverse and reports the failed step.</summary>
public static class SetupPipeline
{
    public static void Run<TContext>(IReadOnlyList<SetupStep<TContext>> steps, TContext context, ILogger log, string subject)
    {
        var undo = new Stack<(string Step, Action Undo)>();
        foreach (var step in steps)
        {
            Action? undoThis;
            try
            {
                undoThis = step.Apply(context);
            }
            catch (Exception ex)
            {
                log.LogWarning("{Subject}: step '{Step}' failed ({Error}); undoing {Count} earlier step(s)", subject, step.Name, KernelFailure.Describe(ex) ?? ex.Message, undo.Count);
                RollBack(undo, log, subject);
                throw new SetupStepFailedException(step.Name, ex);
            }
            if (undoThis is not null)
                undo.Push((step.Name, undoThis));
        }
    }

    private static void RollBack(Stack<(string Step, Action Undo)> undo, ILogger log, string subject)
    {
        while (undo.TryPop(out var entry))
        {
            try
            {
                entry.Undo();
            }
            catch (Exception ex)
            {
                // The reconciler removes whatever an undo could not: links no record owns are deleted.
                log.LogError("{Subject}: undoing step '{Step}' failed: {Error}", subject, entry.Step, KernelFailure.Describe(ex) ?? ex.Message);
            }
        }
    }
}
