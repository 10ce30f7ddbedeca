//! The queue behind group commit and group reads: a few worker tasks, each taking whatever
//! is waiting (at least one item, at most `max`, never waiting for more) as one batch.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{Mutex, mpsc};

/// Start `workers` tasks that hand each batch to `handle`; they end when every sender is gone.
pub fn start<T, F, Fut>(workers: usize, max: usize, handle: F) -> mpsc::Sender<T>
where
    T: Send + 'static,
    F: Fn(Vec<T>) -> Fut + Clone + Send + 'static,
    Fut: Future<Output = ()> + Send,
{
    let (sender, receiver) = mpsc::channel::<T>(4096);
    let receiver = Arc::new(Mutex::new(receiver));
    for _ in 0..workers.max(1) {
        let (handle, receiver) = (handle.clone(), receiver.clone());
        tokio::spawn(async move {
            loop {
                let batch = {
                    let mut receiver = receiver.lock().await;
                    let Some(first) = receiver.recv().await else { return };
                    let mut batch = vec![first];
                    while batch.len() < max {
                        match receiver.try_recv() {
                            Ok(next) => batch.push(next),
                            Err(_) => break,
                        }
                    }
                    batch
                };
                handle(batch).await;
            }
        });
    }
    sender
}
