use alter_testkit::{TestServer, on_every_engine};

#[tokio::test]
async fn liveness_and_readiness() {
    on_every_engine(|engine| async move {
        let server = TestServer::start(engine).await;
        for (path, status) in [("/healthz", "ok"), ("/readyz", "ready")] {
            let response = reqwest::get(format!("{}{path}", server.base_url()))
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{path}");
            let body: serde_json::Value = response.json().await.unwrap();
            assert_eq!(body["status"], status);
        }
        let missing = reqwest::get(format!("{}/nope", server.base_url()))
            .await
            .unwrap();
        assert_eq!(missing.status(), 404);
        let body: serde_json::Value = missing.json().await.unwrap();
        assert_eq!(body["error"], "not_found");
        server.stop().await;
    })
    .await;
}
