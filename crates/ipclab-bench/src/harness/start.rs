//! Starting a cell's pairs: each pair's channel prepared, its two sides
//! forked, and what the supervisor keeps of them to wait on and clean up.

use anyhow::{Context, Result};
use rustix::process::{Signal, WaitOptions, kill_process, waitpid};

use super::kernel_limits;
use super::spec::CellSpec;
use super::supervisor::{Child, Role, fork_side, side_cpu, side_main};
use super::window::Window;
use crate::transport::{LaterMemory, SharedMemory, Transport};

/// What the supervisor holds of the pairs it has started.
#[derive(Default)]
pub(super) struct Started {
    /// Each pair's guard: dropped once every side is reaped, it removes
    /// the channel's names and kernel objects.
    pub guards: Vec<Box<dyn std::any::Any>>,
    /// Server then client, pair by pair.
    pub children: Vec<Child>,
    /// The first pair's shared memory, for a scribbler (tests only).
    pub targets: Vec<SharedMemory>,
    /// Or what its sides pass on once they made it.
    pub later: Option<LaterMemory>,
}

impl Started {
    /// Prepares pair `index`'s channel, keeps its guard, forks its server
    /// and its client, and drops the supervisor's copy of its ends. With
    /// `scribble_on`, first maps the channel's shared memory for a
    /// scribbler.
    pub fn pair(
        &mut self,
        spec: &CellSpec,
        transport: &dyn Transport,
        index: usize,
        window: &Window,
        scribble_on: bool,
    ) -> Result<()> {
        // What failed, naming the pair when there are several, and the
        // kernel limit behind it when there is one.
        let in_pair = |e: anyhow::Error, what: &str| {
            let what = match spec.pairs {
                0 | 1 => what.to_string(),
                n => format!("{what} of pair {} of {n}", index + 1),
            };
            e.context(format!("{}: {what}", spec.mechanism))
        };
        let prepared = transport.prepare(&spec.channel).map_err(|e| {
            in_pair(
                kernel_limits::name_the_limit(e.into()),
                "preparing the channel",
            )
        })?;
        if std::env::var_os("IPCLAB_FAULT_STOP_AFTER_PREPARE").is_some() {
            // Tests only: stop here, objects made and no side started, for
            // the test to `kill -9` us (what `ipclab ls`/`clean` must then
            // find).
            let _ = kill_process(rustix::process::getpid(), Signal::STOP);
        }
        self.guards.push(prepared.guard);
        let mut pair = Some(prepared.pair);
        // Fault injection (tests only): the shared memory, mapped before
        // the sides can remove its name, for a scribbler forked later.
        if let (true, Some(pair)) = (scribble_on, pair.as_mut()) {
            self.targets = pair
                .shared_memory()
                .context("mapping the shared memory to scribble on")?;
            if self.targets.is_empty() {
                self.later = pair
                    .shared_memory_later()
                    .context("asking for the shared memory to scribble on")?;
            }
        }
        let supervisor = rustix::process::getpid();
        for role in [Role::Server, Role::Client] {
            let cpu = side_cpu(spec, role, index);
            let guards = &mut self.guards;
            let others = &mut self.children;
            let targets = &mut self.targets;
            let later = &mut self.later;
            let child = fork_side(role, index, |report| {
                // The guards belong to the supervisor: the child must not
                // remove the channels' objects when it exits.
                std::mem::forget(std::mem::take(guards));
                // Nor keep the other sides' reports and pidfds, or the
                // scribbler's mappings: with many pairs, the descriptors
                // of every earlier side would add up.
                drop(std::mem::take(others));
                drop(std::mem::take(targets));
                drop(later.take());
                let pair = pair.take().expect("each child takes the pair once");
                let window = window.pair(index);
                side_main(spec, role, cpu, pair, &window, report, supervisor);
            })
            .map_err(|e| in_pair(e, "starting the sides"))?;
            self.children.push(child);
        }
        // Our copy of both ends goes, so that each side sees the other's
        // death.
        drop(pair);
        Ok(())
    }

    /// Kills and reaps every side started (a cell that could not start
    /// all its pairs); the guards go with `self`.
    pub fn kill_all(&mut self) {
        kill(&mut self.children);
    }
}

/// Kills and reaps `children`.
pub(super) fn kill(children: &mut [Child]) {
    for c in children.iter() {
        let _ = kill_process(c.pid, Signal::KILL);
    }
    for c in children.iter_mut() {
        let _ = waitpid(Some(c.pid), WaitOptions::empty());
        c.status = Some(-1);
    }
}
