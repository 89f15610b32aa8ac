//! Notifications: owed exactly once per terminal outcome per channel, leased, retried, logged.

use std::collections::HashSet;

use vidsnap_domain::{
    Channel, DeliveryAttempt, DeliveryStatus, EventType, NotificationId, PortError, Repository,
    Transition,
    VideoStatus::{self, *},
};

use super::{assert_not_found, new_user, new_video, new_webhook, now, seconds, walk};

pub async fn terminal_outcomes_notify_once_per_channel(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    let one = new_webhook(repo, alice.id, "https://alice.example/one").await;
    let two = new_webhook(repo, alice.id, "https://alice.example/two").await;
    new_webhook(repo, bob.id, "https://bob.example/hook").await;

    let clip = new_video(repo, alice.id, "clip.mp4").await;
    let before = now();
    let done = walk(repo, clip.id, &[Queued, Processing, Succeeded]).await;
    let owed = repo.notifications_for(clip.id).await.unwrap();
    let channels: HashSet<String> = owed
        .iter()
        .map(|n| serde_json::to_string(&n.channel).unwrap())
        .collect();
    let expected: HashSet<String> = [
        Channel::Email {
            to: "alice@example.com".to_owned(),
        },
        Channel::Webhook {
            webhook: one.id,
            url: one.url.clone(),
        },
        Channel::Webhook {
            webhook: two.id,
            url: two.url.clone(),
        },
    ]
    .iter()
    .map(|c| serde_json::to_string(c).unwrap())
    .collect();
    assert_eq!(
        channels, expected,
        "one e-mail and one per webhook of the owner"
    );
    assert_eq!(owed.len(), 3);
    for n in &owed {
        assert_eq!(n.owner, alice.id);
        assert_eq!(n.video, clip.id);
        assert_eq!((n.cycle, n.event), (0, EventType::VideoSucceeded));
        assert_eq!(n.status, DeliveryStatus::Pending);
        assert_eq!((n.attempts, n.last_error.as_deref()), (0, None));
        assert!(
            n.next_attempt_at >= before && n.next_attempt_at <= now(),
            "due now"
        );
        assert_eq!(n.delivered_at, None);
        assert_eq!(n.payload["id"], n.id.to_string());
        assert_eq!(n.payload["type"], "video.succeeded");
        assert_eq!(n.payload["version"], 1);
        assert!(n.payload["created_at"].is_string());
        assert_eq!(n.payload["video"]["id"], clip.id.to_string());
        assert_eq!(n.payload["video"]["file_name"], "clip.mp4");
        assert_eq!(n.payload["video"]["status"], "succeeded");
        assert_eq!(n.payload["video"]["attempts"], done.attempts);
        assert_eq!(
            n.payload["video"]["outputs"],
            serde_json::to_value(&done.outputs).unwrap()
        );
    }

    let again = repo.transition(clip.id, Transition::to(Succeeded)).await;
    assert!(matches!(again, Err(PortError::InvalidTransition { .. })));
    assert_eq!(repo.notifications_for(clip.id).await.unwrap(), owed);

    // The same outcome reached twice in one cycle (dead, queued by hand without a new cycle,
    // dead again) is still announced once.
    let doomed = new_video(repo, alice.id, "doomed.mp4").await;
    walk(repo, doomed.id, &[Queued, Processing, Failed, Dead]).await;
    let first = repo.notifications_for(doomed.id).await.unwrap();
    assert_eq!(first.len(), 3);
    assert!(first.iter().all(|n| n.event == EventType::VideoDead));
    assert!(first.iter().all(|n| n.payload["type"] == "video.dead"));
    walk(repo, doomed.id, &[Queued, Processing, Failed, Dead]).await;
    assert_eq!(repo.notifications_for(doomed.id).await.unwrap(), first);
}

pub async fn a_new_cycle_notifies_again(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    new_webhook(repo, alice.id, "https://alice.example/hook").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    walk(repo, clip.id, &[Queued, Processing, Failed, Dead]).await;
    assert_eq!(repo.notifications_for(clip.id).await.unwrap().len(), 2);

    let retry = || Transition {
        new_cycle: true,
        ..Transition::to(Queued).reason("user retry")
    };
    repo.transition(clip.id, retry()).await.unwrap();
    walk(repo, clip.id, &[Processing, Failed, Dead]).await;
    repo.transition(clip.id, retry()).await.unwrap();
    let done = walk(repo, clip.id, &[Processing, Succeeded]).await;
    assert_eq!(done.cycle, 2);

    let mut outcomes: Vec<(u32, EventType)> = repo
        .notifications_for(clip.id)
        .await
        .unwrap()
        .iter()
        .map(|n| (n.cycle, n.event))
        .collect();
    outcomes.sort_by_key(|(cycle, event)| (*cycle, event.as_str()));
    assert_eq!(
        outcomes,
        vec![
            (0, EventType::VideoDead),
            (0, EventType::VideoDead),
            (1, EventType::VideoDead),
            (1, EventType::VideoDead),
            (2, EventType::VideoSucceeded),
            (2, EventType::VideoSucceeded),
        ]
    );
}

fn failed(code: u16, retry_in: Option<i64>) -> DeliveryAttempt {
    DeliveryAttempt {
        ok: false,
        status_code: Some(code),
        error: Some(format!("HTTP {code}")),
        retry_at: retry_in.map(|s| now() + seconds(s)),
    }
}

pub async fn notifications_are_leased_retried_and_redelivered(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let bob = new_user(repo, "bob@example.com").await;
    new_webhook(repo, alice.id, "https://alice.example/hook").await;
    let clip = new_video(repo, alice.id, "clip.mp4").await;
    walk(repo, clip.id, &[Queued, Processing, Succeeded]).await;
    let owed = repo.notifications_for(clip.id).await.unwrap();
    assert_eq!(owed.len(), 2);
    let hour = now() + seconds(3600);

    let first = repo.claim_notification("n1", hour).await.unwrap().unwrap();
    let second = repo.claim_notification("n2", hour).await.unwrap().unwrap();
    assert_ne!(
        first.id, second.id,
        "a leased notification is not handed out twice"
    );
    assert!(first.id < second.id, "oldest first");
    assert_eq!(repo.claim_notification("n3", hour).await.unwrap(), None);

    let delivered = DeliveryAttempt {
        ok: true,
        status_code: Some(200),
        error: None,
        retry_at: None,
    };
    let before = now();
    repo.record_delivery(first.id, &delivered).await.unwrap();
    let retry = failed(503, Some(3600));
    repo.record_delivery(second.id, &retry).await.unwrap();
    let by_id = |id: NotificationId| async move {
        let all = repo.notifications_for(clip.id).await.unwrap();
        all.into_iter().find(|n| n.id == id).unwrap()
    };
    let ok = by_id(first.id).await;
    assert_eq!((ok.status, ok.attempts), (DeliveryStatus::Delivered, 1));
    assert!(ok.delivered_at.is_some_and(|at| at >= before));
    assert_eq!(ok.last_status_code, Some(200));
    let later = by_id(second.id).await;
    assert_eq!((later.status, later.attempts), (DeliveryStatus::Pending, 1));
    assert_eq!(later.next_attempt_at, retry.retry_at.unwrap());
    assert_eq!(later.last_error.as_deref(), Some("HTTP 503"));
    assert_eq!(later.last_status_code, Some(503));
    assert_eq!(later.payload, second.payload, "the body is frozen");
    assert_eq!(
        repo.claim_notification("n1", hour).await.unwrap(),
        None,
        "a retry is not due before its time"
    );

    assert_not_found(
        repo.redeliver(bob.id, second.id).await,
        "bob redelivers alice's",
    );
    let again = repo.redeliver(alice.id, second.id).await.unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert!(again.next_attempt_at <= now());
    let claimed = repo.claim_notification("n1", hour).await.unwrap().unwrap();
    assert_eq!(claimed.id, second.id);
    repo.record_delivery(second.id, &failed(410, None))
        .await
        .unwrap();
    let gone = by_id(second.id).await;
    assert_eq!((gone.status, gone.attempts), (DeliveryStatus::Failed, 2));
    assert_eq!(repo.claim_notification("n1", hour).await.unwrap(), None);

    // A lease that ran out (the notifier died) frees the notification for another.
    repo.redeliver(alice.id, second.id).await.unwrap();
    let lapsed = now() - seconds(1);
    let dying = repo
        .claim_notification("n1", lapsed)
        .await
        .unwrap()
        .unwrap();
    let rescued = repo.claim_notification("n2", hour).await.unwrap().unwrap();
    assert_eq!(dying.id, rescued.id);
    assert_eq!(repo.claim_notification("n3", hour).await.unwrap(), None);

    assert_not_found(
        repo.record_delivery(NotificationId::new(), &delivered)
            .await,
        "an unknown notification",
    );
    assert_not_found(
        repo.redeliver(alice.id, NotificationId::new()).await,
        "an unknown notification",
    );
}

pub async fn deliveries_are_the_webhooks_newest_first(repo: &dyn Repository) {
    let alice = new_user(repo, "alice@example.com").await;
    let hook = new_webhook(repo, alice.id, "https://alice.example/hook").await;
    let other = new_webhook(repo, alice.id, "https://alice.example/other").await;
    let mut expected = Vec::new();
    for (name, outcome) in [("a.mp4", Succeeded), ("b.mp4", Dead), ("c.mp4", Succeeded)] {
        let clip = new_video(repo, alice.id, name).await;
        let path: &[VideoStatus] = if outcome == Dead {
            &[Queued, Processing, Failed, Dead]
        } else {
            &[Queued, Processing, Succeeded]
        };
        walk(repo, clip.id, path).await;
        expected.push(clip.id);
    }
    expected.reverse();

    let log = repo.deliveries(alice.id, hook.id).await.unwrap();
    assert_eq!(log.iter().map(|n| n.video).collect::<Vec<_>>(), expected);
    assert!(log.iter().all(|n| matches!(
        &n.channel,
        Channel::Webhook { webhook, .. } if *webhook == hook.id
    )));
    assert_eq!(repo.deliveries(alice.id, other.id).await.unwrap().len(), 3);
}
