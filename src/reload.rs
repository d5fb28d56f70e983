//! Configuration reloads (SIGHUP or `POST /reload`): the file is read and validated again, and
//! new or changed functions are loaded, before anything is swapped; an invalid file is refused
//! and the running configuration kept. Requests in flight finish under the configuration they
//! started with; functions get their new code without a restart. Listeners, the admin address,
//! TLS, threads, the cache size and `[tracing]` take effect at the next restart (or a graceful upgrade).

use crate::config::{self, Config};
use crate::js::{FunctionSpec, JsPool, PoolOptions};
use crate::origin::dir::DirServer;
use crate::origin::Upstreams;
use crate::proxy::NodeState;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct Reloader {
    pub path: PathBuf,
    pub node: Arc<NodeState>,
    pub local_socket: PathBuf,
    /// One reload at a time.
    pub running: parking_lot::Mutex<()>,
}

/// What a reload changed, or could not change without a restart.
#[derive(Debug, Default, serde::Serialize)]
pub struct ReloadReport {
    pub functions_updated: Vec<String>,
    pub needs_restart: Vec<String>,
}

fn restart_only(old: &Config, new: &Config) -> Vec<String> {
    let mut out = Vec::new();
    let mut check = |name: &str, changed: bool| {
        if changed {
            out.push(format!("{name} changed: takes effect at the next restart"));
        }
    };
    check("server.listen", old.server.listen != new.server.listen);
    check("server.admin", old.server.admin != new.server.admin);
    check("server.threads", old.server.threads != new.server.threads);
    // Certificates are reloaded live; the listeners are not.
    let listener = |c: &Config| {
        c.server
            .tls
            .as_ref()
            .map(|t| (t.listen.clone(), t.h2, t.check_interval))
    };
    check("server.tls", listener(old) != listener(new));
    check(
        "cache",
        (
            old.cache.memory,
            old.cache.max_object_size,
            old.cache.memory_max_object_size,
            old.cache.lock_timeout,
            &old.cache.disk,
        ) != (
            new.cache.memory,
            new.cache.max_object_size,
            new.cache.memory_max_object_size,
            new.cache.lock_timeout,
            &new.cache.disk,
        ),
    );
    check("runtime", old.runtime.started_with() != new.runtime.started_with());
    check("log.file", old.log.file != new.log.file);
    check("log.access_file", old.log.access_file != new.log.access_file);
    check("deploy.state_dir", old.state_dir != new.state_dir);
    check("deploy.store", old.store != new.store);
    check("deploy.etcd.node", old.node != new.node);
    check("tracing", old.tracing != new.tracing);
    out
}

impl Reloader {
    pub fn reload(&self) -> Result<ReloadReport, String> {
        let _one = self.running.lock();
        let new = config::load(&self.path).map_err(|e| e.to_string())?;
        let old = self.node.config.load_full();
        let deploy = self.node.deploy.as_ref().ok_or("functions are not running")?;
        if self.node.functions.is_none() {
            return Err("functions are not running".into());
        }
        // Everything that can fail happens before anything changes.
        let changed: Vec<&config::Function> = new
            .functions
            .values()
            .filter(|f| old.functions.get(&f.name) != Some(*f))
            .collect();
        let probe = PoolOptions {
            threads: 1,
            queue: 1,
            max_wait: Duration::from_secs(1),
            snapshot: true,
            name_servers: Vec::new(),
            ..PoolOptions::default()
        };
        for function in &changed {
            JsPool::start(vec![FunctionSpec::from(*function)], &probe)
                .map_err(|e| format!("`functions.{}.code` {e}", function.name))?;
        }
        let upstreams = Upstreams::new(self.local_socket.clone(), &new, Some(&self.node.upstreams.load()))
            .map_err(|e| e.to_string())?;
        let report = ReloadReport {
            functions_updated: changed.iter().map(|f| f.name.clone()).collect(),
            needs_restart: restart_only(&old, &new),
        };
        deploy.set_configured(new.functions.clone());
        for function in changed {
            deploy.register_configured(function);
        }
        deploy.refresh_aliases().map_err(|e| e.to_string())?;
        for behavior in new.behaviors() {
            let hooks = &behavior.hooks;
            for association in [
                &hooks.viewer_request,
                &hooks.origin_request,
                &hooks.origin_response,
                &hooks.viewer_response,
            ]
            .into_iter()
            .flatten()
            {
                if let Err(e) = deploy.resolve(&association.function, "") {
                    deploy.set_configured(old.functions.clone());
                    return Err(format!("behavior `{}`: {e}", behavior.pattern.as_str()));
                }
            }
        }
        self.node.upstreams.store(Arc::new(upstreams));
        let dirs = new
            .origins
            .values()
            .filter_map(|o| match &o.kind {
                config::OriginKind::Dir(dir) => Some((o.name.clone(), dir.clone())),
                config::OriginKind::Http(_) => None,
            })
            .collect();
        self.node.dirs.store(Arc::new(DirServer::new(dirs)));
        // Before the new distributions take requests: their certificates are ready.
        if let Some(certificates) = &self.node.certificates {
            certificates.reload(&new);
        }
        self.node.config.store(Arc::new(new));
        Ok(report)
    }

    /// Reloads and logs the outcome.
    pub fn reload_and_log(&self, trigger: &str) -> Result<ReloadReport, String> {
        let result = self.reload();
        match &result {
            Ok(report) => tracing::info!(
                target: "edgehook::reload",
                trigger,
                functions_updated = ?report.functions_updated,
                needs_restart = ?report.needs_restart,
                "configuration reloaded"
            ),
            Err(e) => {
                tracing::error!(target: "edgehook::reload", trigger, "reload refused, the running configuration stays:\n{e}")
            }
        }
        result
    }

    /// Reloads on every SIGHUP, from a thread of its own.
    pub fn watch_sighup(self: &Arc<Self>) {
        let reloader = self.clone();
        crate::signals::on_every(
            tokio::signal::unix::SignalKind::hangup(),
            "edgehook-sighup",
            move || {
                let _ = reloader.reload_and_log("SIGHUP");
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(extra: &str) -> Config {
        let text = format!(
            "{extra}\n[origins.app]\nurl = \"http://127.0.0.1:9000\"\n[[behaviors]]\npath = \"*\"\norigin = \"app\"\n"
        );
        config::parse(&text, "test.toml", std::path::Path::new(".")).expect("a valid config")
    }

    #[test]
    fn the_tracer_is_set_up_at_start_so_tracing_changes_wait_for_a_restart() {
        let off = parsed("");
        let on = parsed("[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"");
        let ratio = parsed("[tracing]\notlp_endpoint = \"http://127.0.0.1:4318\"\nsample_ratio = 0.5");
        assert_eq!(restart_only(&off, &off), Vec::<String>::new());
        for (old, new) in [(&off, &on), (&on, &ratio), (&on, &off)] {
            assert_eq!(
                restart_only(old, new),
                ["tracing changed: takes effect at the next restart"]
            );
        }
    }
}
