use super::*;
use crate::edge::sample::{sample, SampleOptions};
use crate::edge::EventType;

fn pool(specs: Vec<FunctionSpec>) -> JsPool {
    JsPool::start(specs, &PoolOptions { threads: 1, queue: 16, max_wait: Duration::from_millis(500) }).expect("pool starts")
}

#[tokio::test(flavor = "multi_thread")]
async fn smoke() {
    let spec = FunctionSpec::new(
        "smoke",
        "index.mjs",
        "export const handler = async (event) => { const r = event.Records[0].cf.request; r.uri = '/rewritten'; return r; };",
    );
    let pool = pool(vec![spec]);
    let event = sample(EventType::ViewerRequest, &SampleOptions::default());
    let Outcome::Request { request, .. } = pool.invoke("smoke", &event).await.unwrap() else { panic!("request expected") };
    assert_eq!(request.uri, "/rewritten");
}
