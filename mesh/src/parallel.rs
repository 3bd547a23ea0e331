//! The deployer's one thread pool: a fixed number of scoped workers taking items from a shared
//! counter, results back in the items' order. `verify` (calls through the gateway),
//! `stats --kubectl` (one `kubectl exec` per pod) and `render` (slices of a large mesh) use it.

use std::sync::atomic::{AtomicUsize, Ordering};

/// `f` over every item on at most `threads` threads; the results in `items` order, whatever
/// the number of threads. A panic in `f` is re-raised here once all workers have stopped.
pub fn map<T, R, F>(items: &[T], threads: usize, f: F) -> Vec<R>
where
    T: Sync,
    R: Send,
    F: Fn(&T) -> R + Sync,
{
    let threads = threads.clamp(1, items.len().max(1));
    if threads == 1 {
        return items.iter().map(&f).collect();
    }
    let next = AtomicUsize::new(0);
    let mut done: Vec<(usize, R)> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        mine.push((i, f(item)));
                    }
                    mine
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_else(|p| std::panic::resume_unwind(p)))
            .collect()
    });
    done.sort_by_key(|(i, _)| *i);
    done.into_iter().map(|(_, r)| r).collect()
}

#[cfg(test)]
mod tests {
    use super::map;

    #[test]
    fn keeps_order_on_any_number_of_threads() {
        let items: Vec<u32> = (0..100).collect();
        for threads in [0, 1, 3, 8, 200] {
            assert_eq!(
                map(&items, threads, |n| n * 2),
                (0..100).map(|n| n * 2).collect::<Vec<_>>()
            );
        }
        assert!(map(&[] as &[u32], 4, |n| *n).is_empty());
    }

    #[test]
    #[should_panic(expected = "boom")]
    fn a_worker_panic_reaches_the_caller() {
        map(&[1, 2, 3], 2, |n| if *n == 2 { panic!("boom") } else { *n });
    }
}
