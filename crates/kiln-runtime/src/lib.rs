//! kiln-runtime: run a process from an OCI runtime spec.
//!
//! Two executors behind one enum ([`Executor`]): the embedded one (the default; namespaces,
//! mounts, `pivot_root`, user, capabilities and rlimits done with system calls, no binary
//! needed) and an external OCI runtime such as runc or crun. Both take an
//! [`oci_spec::runtime::Spec`] whose `root.path` is an already prepared root directory, and the
//! container's [`Stdio`]; [`Executor::run`] blocks until the process exits and returns its
//! [`ExitStatus`]. [`Executor::spawn`] returns a [`Container`] with a [`Killer`] for
//! cancellation.
//!
//! [`docker_default_spec`] is the spec a BuildKit RUN step gets (Docker's capabilities, mounts,
//! masked and read-only paths); [`MountStubs`] removes mount points a run had to create, for
//! files such as `/etc/hosts` that a build provides but must not commit.
//!
//! ```no_run
//! use kiln_runtime::{Executor, Stdio, docker_default_spec};
//! let mut spec = docker_default_spec();
//! spec.root_mut().as_mut().unwrap().set_path("/tmp/rootfs".into());
//! spec.process_mut().as_mut().unwrap().set_args(Some(vec!["sh".into(), "-c".into(), "echo hi".into()]));
//! let status = Executor::Embedded.run(&spec, Stdio::inherit()?)?;
//! assert!(status.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod binfmt;
mod caps;
mod child;
mod container;
mod defaults;
mod devices;
mod embedded;
mod error;
mod external;
mod fdpass;
mod mountopts;
mod plan;
pub mod seccomp;
mod stdio;
mod stubs;
pub mod userns;

pub use oci_spec;

pub use caps::all_capabilities;
pub use caps::mask as capability_mask;
pub use caps::names as capability_names;
pub use caps::tweak as tweak_capabilities;
pub use container::{Container, Executor, Killer};
pub use defaults::{
    DEFAULT_MASKED_PATHS, DEFAULT_PATH, DEFAULT_READONLY_PATHS, Network, bind_mount,
    default_capabilities, default_mounts, docker_default_spec, set_insecure, set_network,
    tmpfs_mount,
};
pub use devices::default_device_rules;
pub use error::{Result, RuntimeError};
pub use fdpass::{receive_fd, receive_fd_blocking, send_fd};
pub use stdio::{ExitStatus, Stdio};
pub use stubs::MountStubs;
