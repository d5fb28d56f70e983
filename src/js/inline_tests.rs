//! Functions on the caller's own thread (`inline`): when a call runs there, when it goes to the
//! JS threads instead, and how instances are bounded and dropped.

use super::inline::warm_here;
use super::native_table;
use super::*;
use crate::edge::sample::{sample, SampleOptions};
use crate::edge::{EventType, RequestOutcome};
use std::time::Instant;

fn inline_options() -> PoolOptions {
    PoolOptions {
        threads: 1,
        queue: 16,
        max_wait: Duration::from_millis(500),
        inline: true,
        inline_budget: Duration::from_millis(20),
        ..PoolOptions::default()
    }
}

fn event() -> Event {
    sample(EventType::ViewerRequest, &SampleOptions::default())
}

/// A function that answers with how many calls its instance has run.
const COUNTER: &str = "let calls = 0;\nexports.handler = async (event) => { const r = event.Records[0].cf.request; r.uri = '/' + (++calls); return r; };";

async fn uri_of(pool: &JsPool, function: &str) -> String {
    match pool.invoke(function, &event()).await {
        Ok(Outcome::Request(RequestOutcome::Continue { request, .. })) => request.uri,
        other => panic!("a request was expected, got {other:?}"),
    }
}

/// Lets the tasks this thread spawned (an instance's build) run.
async fn settle() {
    tokio::time::sleep(Duration::from_millis(50)).await;
}

#[tokio::test(flavor = "current_thread")]
async fn a_quick_function_runs_on_the_callers_thread_once_its_instance_is_built_there() {
    let pool = JsPool::start(vec![FunctionSpec::new("f", "index.js", COUNTER)], &inline_options()).expect("pool");
    assert_eq!(warm_here(), 0, "nothing is built on a thread before it needs it");
    // The first call finds no instance here: the JS thread runs it, and one is built here.
    assert_eq!(uri_of(&pool, "f").await, "/1");
    settle().await;
    assert_eq!(warm_here(), 1);
    // This thread's instance has its own module globals: it starts counting afresh.
    assert_eq!(uri_of(&pool, "f").await, "/1");
    assert_eq!(uri_of(&pool, "f").await, "/2");
    assert_eq!(pool.instances(), 2, "one on the JS thread, one here");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_a_work_stealing_runtime_go_to_the_js_threads() {
    let pool = JsPool::start(vec![FunctionSpec::new("f", "index.js", COUNTER)], &inline_options()).expect("pool");
    for expected in ["/1", "/2", "/3"] {
        assert_eq!(uri_of(&pool, "f").await, expected, "one instance, on the JS thread");
        settle().await;
    }
    assert_eq!(pool.instances(), 1);
}

#[tokio::test(flavor = "current_thread")]
async fn a_function_that_holds_the_thread_past_the_budget_goes_to_the_js_threads() {
    let busy = "exports.handler = async (event) => { const until = Date.now() + 40; while (Date.now() < until) {} return event.Records[0].cf.request; };";
    let quick = "exports.handler = async (event) => event.Records[0].cf.request;";
    let pool = JsPool::start(
        vec![
            FunctionSpec::new("busy", "index.js", busy),
            FunctionSpec::new("quick", "index.js", quick),
        ],
        &inline_options(),
    )
    .expect("pool");
    let spec = |name: &str| pool.crew_spec(name).expect("registered");
    for _ in 0..6 {
        for name in ["busy", "quick"] {
            pool.invoke(name, &event())
                .await
                .expect("the call succeeds wherever it runs");
        }
        settle().await;
    }
    // On a machine busy with other work the build itself can pass the limit: then the function
    // never ran here at all, which is also off the proxy's thread.
    let built_slowly = spec("busy")
        .placement
        .build_time()
        .is_none_or(|took| took > super::inline::BUILD_LIMIT);
    assert!(
        spec("busy").placement.pooled() || built_slowly,
        "40 ms calls against a 20 ms budget"
    );
    assert!(
        !spec("quick").placement.pooled(),
        "a quick function stays on the thread"
    );
    // Its calls still succeed, on the JS thread.
    pool.invoke("busy", &event()).await.expect("served by the JS thread");
}

#[tokio::test(flavor = "current_thread")]
async fn a_handler_waiting_on_a_timer_completes_on_the_thread_and_then_goes_to_the_js_threads() {
    let waits = "exports.handler = async (event) => { await new Promise((done) => setTimeout(done, 20)); const r = event.Records[0].cf.request; r.uri = '/waited'; return r; };";
    let pool = JsPool::start(vec![FunctionSpec::new("f", "index.js", waits)], &inline_options()).expect("pool");
    assert_eq!(uri_of(&pool, "f").await, "/waited");
    settle().await;
    assert_eq!(warm_here(), 1);
    // Meanwhile other tasks of the thread run: the call waits without holding the thread.
    let ticker = tokio::spawn(async {
        let mut ticks = 0;
        for _ in 0..5 {
            tokio::time::sleep(Duration::from_millis(2)).await;
            ticks += 1;
        }
        ticks
    });
    assert_eq!(uri_of(&pool, "f").await, "/waited");
    assert_eq!(ticker.await.expect("ticker"), 5);
    assert!(pool.crew_spec("f").expect("f").placement.pooled());
    assert_eq!(uri_of(&pool, "f").await, "/waited", "now on the JS thread");
}

#[tokio::test(flavor = "current_thread")]
async fn a_script_running_past_its_timeout_on_the_thread_is_stopped_and_the_thread_serves_on() {
    // Quick at first; then it loops forever.
    let turns = "let calls = 0;\nexports.handler = async (event) => { if (++calls > 2) { while (true) {} } return event.Records[0].cf.request; };";
    let mut spec = FunctionSpec::new("f", "index.js", turns);
    spec.timeout = Duration::from_millis(200);
    let pool = JsPool::start(vec![spec], &inline_options()).expect("pool");
    pool.invoke("f", &event()).await.expect("on the JS thread");
    settle().await;
    pool.invoke("f", &event()).await.expect("first call here");
    pool.invoke("f", &event()).await.expect("second call here");
    let started = Instant::now();
    let error = pool.invoke("f", &event()).await.expect_err("the loop is stopped");
    assert_eq!(error.error_type, "Runtime.Timeout", "{error:?}");
    assert!(started.elapsed() < Duration::from_secs(2));
    assert_eq!(warm_here(), 0, "the stopped instance is dropped");
    assert!(pool.crew_spec("f").expect("f").placement.pooled());
    // The JS thread's instance (one call so far) answers next.
    pool.invoke("f", &event()).await.expect("the JS thread's instance");
}

#[tokio::test(flavor = "current_thread")]
async fn idle_instances_are_dropped_everywhere() {
    let options = PoolOptions {
        idle_timeout: Duration::from_millis(300),
        ..inline_options()
    };
    let pool = JsPool::start(vec![FunctionSpec::new("f", "index.js", COUNTER)], &options).expect("pool");
    uri_of(&pool, "f").await;
    settle().await;
    uri_of(&pool, "f").await;
    assert_eq!(pool.instances(), 2);
    // Sweeps come every second at the most often.
    tokio::time::sleep(Duration::from_millis(2600)).await;
    assert_eq!((pool.instances(), warm_here()), (0, 0));
    // A later call builds afresh.
    assert_eq!(uri_of(&pool, "f").await, "/1");
}

#[tokio::test(flavor = "current_thread")]
async fn the_instance_bound_holds() {
    let functions: Vec<FunctionSpec> = (0..6)
        .map(|i| FunctionSpec::new(&format!("f{i}"), "index.js", COUNTER))
        .collect();
    let options = PoolOptions {
        threads: 2,
        max_instances: 3,
        ..inline_options()
    };
    let pool = JsPool::start(functions, &options).expect("pool");
    for _ in 0..3 {
        for i in 0..6 {
            uri_of(&pool, &format!("f{i}")).await;
            settle().await;
            // Each JS thread may hold one over the bound, for the call in hand.
            assert!(pool.instances() <= 3 + 2, "{} instances", pool.instances());
        }
    }
}

/// Runs `test` on a current-thread runtime of a new thread, for tests that spend their thread's
/// native-function table on purpose.
fn on_a_fresh_thread<F: std::future::Future<Output = ()>>(test: impl FnOnce() -> F + Send + 'static) {
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        runtime.block_on(test());
    })
    .join()
    .expect("the test's thread");
}

#[test]
fn a_proxy_thread_that_has_built_all_it_may_sends_its_calls_to_the_js_threads() {
    on_a_fresh_thread(|| async {
        let pool = JsPool::start(vec![FunctionSpec::new("f", "index.js", COUNTER)], &inline_options()).expect("pool");
        while native_table::room_for(1) {
            native_table::spend(false);
        }
        for round in 0..3 {
            let code = format!("exports.handler = async (event) => {{ const r = event.Records[0].cf.request; r.uri = '/{round}'; return r; }};");
            pool.register(FunctionSpec::new("f", "index.js", &code));
            for _ in 0..10 {
                assert_eq!(uri_of(&pool, "f").await, format!("/{round}"), "the newest code answers");
                settle().await;
            }
        }
        assert_eq!(warm_here(), 0, "nothing is built here");
    });
}

#[test]
fn a_proxy_thread_past_half_its_table_builds_only_for_functions_asked_for_often() {
    on_a_fresh_thread(|| async {
        let pool = JsPool::start(
            vec![
                FunctionSpec::new("rare", "index.js", COUNTER),
                FunctionSpec::new("often", "index.js", COUNTER),
            ],
            &inline_options(),
        )
        .expect("pool");
        while !native_table::past_half() {
            native_table::spend(true);
        }
        for _ in 0..3 {
            uri_of(&pool, "rare").await;
            settle().await;
        }
        assert_eq!(
            warm_here(),
            0,
            "a function asked for now and then runs on the JS threads"
        );
        for _ in 0..8 {
            uri_of(&pool, "often").await;
            settle().await;
        }
        assert_eq!(warm_here(), 1, "one asked for often gets an instance here");
    });
}
