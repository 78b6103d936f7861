//! The leak watch itself: it learns stored values from the requests that store them and finds
//! them in error answers and in the log, so `TestServer::stop` can trust it.

use alter_testkit::{Engine, TestServer, WORLD_SECRET_VALUE, leaks};

#[tokio::test]
async fn the_leak_watch_finds_a_stored_value_in_an_error_answer_and_in_the_log() {
    let server = TestServer::start(Engine::Sqlite).await;
    let world = server.world("a").await;
    let create = format!("/admin/v1/apps/{}/secrets", world.app.info.id);
    let send = |body: serde_json::Value| {
        let url = format!("{}{create}", server.base_url());
        let token = server.admin_token().to_owned();
        async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(token)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    // A refused store still teaches the watch its value, and the refusal does not echo it.
    let refused = send(serde_json::json!({
        "name": "Refused", "type": "no-such-type", "value": "refused-value-0123456789",
    }))
    .await;
    assert!(refused.status().is_client_error());
    assert!(leaks::error_answers_seen() >= 1);
    assert_eq!(leaks::findings(&[]), Vec::<String>::new());

    // An unknown field is named in the refusal: a value equal to that name shows the watch
    // reads error answers.
    let echoed = send(serde_json::json!({
        "name": "Echo", "type": "bearer", "value": "echoed_field_name_x", "echoed_field_name_x": 1,
    }))
    .await;
    assert!(echoed.status().is_client_error());
    let found = leaks::findings(&[]);
    assert!(found.len() == 1 && found[0].contains(&create), "{found:?}");

    tracing::info!(value = WORLD_SECRET_VALUE, "a careless log line");
    let found = leaks::findings(&[]);
    assert!(found.iter().any(|f| f.contains("log output")), "{found:?}");
    // Not `stop()`: it would (rightly) fail on these deliberate leaks.
    drop(server);
}
