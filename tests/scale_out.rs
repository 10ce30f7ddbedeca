//! Scale-out as ARCHITECTURE.md describes it, with real processes on loopback: two command,
//! two query and two projector processes of the `agora` binary on one database. Any command
//! process accepts writes, every query process (each with its own search index) serves them
//! with read-your-writes, and exactly one projector leads each projection; when the leader is
//! killed (SIGKILL: no goodbye, its connections just drop) the standby takes over and nothing
//! is skipped or applied twice.

mod common;

use std::time::Duration;

use common::{Client, Deployment, eventually};
use serde_json::Value;

/// The OS process id in a leader's `application_name` (`agora-<role>:<pid>`).
fn leader_pids(status: &Value) -> Vec<(String, Option<u32>)> {
    status["projections"]
        .as_array()
        .expect("projections")
        .iter()
        .map(|p| {
            let pid = p["leader"]["application_name"]
                .as_str()
                .and_then(|name| name.rsplit(':').next())
                .and_then(|pid| pid.parse().ok());
            (p["name"].as_str().unwrap_or_default().to_owned(), pid)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_of_each_role_share_one_log_and_a_killed_projector_leader_is_replaced() {
    let deployment = Deployment::new();
    let migrated = deployment.tool(&["migrate"]);
    assert!(migrated.status.success(), "{}", String::from_utf8_lossy(&migrated.stderr));

    // The first projector leads every projection and process manager; the second stands by.
    let mut leader = deployment.start(&["project"], "unused");
    eventually(Duration::from_secs(30), "the first projector leads everything", || {
        let pids = leader_pids(&deployment.status());
        let expected = leader.pid();
        async move {
            let led = pids.iter().filter(|(_, pid)| *pid == Some(expected)).count();
            if pids.len() >= 8 && led == pids.len() { Ok(()) } else { Err(format!("{pids:?}")) }
        }
    })
    .await;
    let standby = deployment.start(&["project"], "unused");
    let commands = [deployment.start(&["command"], "unused"), deployment.start(&["command"], "unused")];
    let queries = [deployment.start(&["query"], "index-a"), deployment.start(&["query"], "index-b")];
    let client = Client::new();

    // Writes through either command process; reads through either query process, each
    // waiting (Consistency-Token) until its read models and its own index have the write.
    let vendor = client.account(&commands[0], "vendor", "Kiln & Co").await;
    let (bowl, bowl_written) = client.list(&commands[0], &vendor, "Raku tea bowl", 5).await;
    let (_, vase_written) = client.list(&commands[1], &vendor, "Celadon vase", 5).await;
    for query in &queries {
        for (written, title) in [(&bowl_written, "Raku tea bowl"), (&vase_written, "Celadon vase")] {
            let answer = client
                .graphql(
                    query,
                    &format!("{{ products(query: \"{title}\") {{ totalCount edges {{ node {{ title }} }} }} }}"),
                    None,
                    Some(written),
                )
                .await;
            assert!(answer.get("errors").is_none(), "{answer}");
            assert_eq!(answer["data"]["products"]["edges"][0]["node"]["title"], title, "{answer}");
        }
    }
    let leaders_before = leader_pids(&deployment.status());
    assert!(leaders_before.iter().all(|(_, pid)| *pid == Some(leader.pid())), "{leaders_before:?}");

    // Kill the leader. The standby takes over every projection and process manager.
    leader.kill();
    eventually(Duration::from_secs(30), "the standby leads everything", || {
        let pids = leader_pids(&deployment.status());
        let expected = standby.pid();
        async move {
            if pids.iter().all(|(_, pid)| *pid == Some(expected)) { Ok(()) } else { Err(format!("{pids:?}")) }
        }
    })
    .await;

    // Work after the takeover: a new product (read models + both indexes) and an order, which
    // the payment process manager now running in the standby confirms.
    let (_, jug_written) = client.list(&commands[1], &vendor, "Stoneware jug", 3).await;
    for query in &queries {
        let answer = client
            .graphql(query, "{ products(query: \"stoneware jug\") { totalCount } }", None, Some(&jug_written))
            .await;
        assert_eq!(answer["data"]["products"]["totalCount"], 1, "{answer}");
    }
    let buyer = client.account(&commands[1], "buyer", "Ada Buyer").await;
    let (order, placed) = client.buy(&commands[0], &buyer, &bowl, 2).await;
    for query in &queries {
        eventually(Duration::from_secs(30), "the order is confirmed by the new leader's payment process", || {
            let (client, query, buyer, order, placed) = (&client, query, &buyer, &order, &placed);
            async move {
                let answer = client
                    .graphql(
                        query,
                        &format!("{{ order(id: \"{order}\") {{ status payment {{ state }} }} }}"),
                        Some(buyer),
                        Some(placed),
                    )
                    .await;
                match answer["data"]["order"]["status"].as_str() {
                    Some("CONFIRMED") => Ok(()),
                    _ => Err(answer.to_string()),
                }
            }
        })
        .await;
        // Stock went down once, not twice: each event applied exactly once across the takeover.
        let answer =
            client.graphql(query, &format!("{{ product(id: \"{bowl}\") {{ stock }} }}"), None, Some(&placed)).await;
        assert_eq!(answer["data"]["product"]["stock"], 3, "{answer}");
    }

    // A command process dies; the other keeps accepting writes.
    let [mut first, second] = commands;
    first.kill();
    let (_, _) = client.list(&second, &vendor, "Porcelain cup", 9).await;

    let status = deployment.status();
    for projection in status["projections"].as_array().unwrap() {
        assert!(projection["error"].is_null(), "{projection}");
    }

    // SIGTERM: every role drains and exits cleanly (status 0), the projector releasing its
    // leadership on the way out.
    let [first_query, second_query] = queries;
    for mut process in [second, first_query, second_query, standby] {
        let exit = process.terminate();
        assert!(exit.success(), "{exit:?}");
    }
    let released = leader_pids(&deployment.status());
    assert!(released.iter().all(|(_, pid)| pid.is_none()), "{released:?}");
}
