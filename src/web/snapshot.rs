//! What the web view shows at one revision of the controller's cache: every live page
//! rendered once, and the data behind the JSON API. Built once per change and shared by
//! every viewer, so a change costs the same with one viewer or a hundred. Pure.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::html::{self, Page, StackPage};
use crate::controller::world::World;
use crate::events::Event;
use crate::spec::StackStatus;
use crate::view::{self, HostView};

/// Events the events page shows, newest first.
pub const EVENTS_SHOWN: usize = 200;

#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The cache's revision; `None` until the controller's first etcd list completed.
    pub revision: Option<i64>,
    /// The part of each live page a stream replaces, by page. A stack page that is not
    /// here shows that the stack does not exist (yet).
    fragments: BTreeMap<Page, Arc<str>>,
    /// As `berth status -o json`: every status, sorted by stack id.
    pub statuses: Vec<StackStatus>,
    /// As `berth hosts -o json`.
    pub hosts: Vec<HostView>,
    /// As `berth events -o json`: oldest first.
    pub events: Vec<Event>,
}

impl Snapshot {
    /// The view of `world` at `revision` with its `events` (oldest first). A page whose
    /// rendering did not change keeps `previous`'s allocation, so a stream can tell by
    /// pointer that it has nothing new to send.
    pub fn build(
        world: &World,
        events: Vec<Event>,
        revision: i64,
        previous: Option<&Snapshot>,
    ) -> Snapshot {
        let all = view::deployment_map(world, None);
        let hosts = view::hosts(world);
        let statuses: Vec<StackStatus> = view::statuses(world).into_iter().cloned().collect();
        let mut pages: Vec<(Page, String)> = vec![
            (Page::Map, html::map(&all, &hosts, &statuses)),
            (Page::Stacks, html::stacks(&all.stacks, &statuses)),
            (Page::Hosts, html::hosts(&hosts)),
            (Page::Events, html::events(&events, EVENTS_SHOWN)),
        ];
        for line in &all.stacks {
            let map = view::deployment_map(world, Some(&line.id));
            let own: Vec<Event> = events
                .iter()
                .filter(|e| e.stack == line.id)
                .cloned()
                .collect();
            let body = html::stack(&StackPage {
                id: &line.id,
                line: Some(line),
                status: statuses.iter().find(|st| st.stack == line.id),
                map: &map,
                events: &own,
            });
            pages.push((Page::Stack(line.id.clone()), body));
        }
        let fragments = pages
            .into_iter()
            .map(|(page, body)| {
                let kept = previous
                    .and_then(|p| p.fragments.get(&page))
                    .filter(|old| ***old == *body)
                    .cloned();
                (page, kept.unwrap_or_else(|| Arc::from(body)))
            })
            .collect();
        Snapshot {
            revision: Some(revision),
            fragments,
            statuses,
            hosts,
            events,
        }
    }

    /// The live part of `page`: rendered, or a page of its own for a stack that does
    /// not exist and for the time before the first list.
    pub fn fragment(&self, page: &Page) -> Arc<str> {
        if self.revision.is_none() {
            return Arc::from(
                "<p class=\"empty\">Waiting for the controller's first read of etcd.</p>",
            );
        }
        match (self.fragments.get(page), page) {
            (Some(f), _) => f.clone(),
            (None, Page::Stack(id)) => Arc::from(html::stack(&StackPage {
                id,
                line: None,
                status: None,
                map: &view::DeploymentMap {
                    stacks: Vec::new(),
                    hosts: Vec::new(),
                    unscheduled: Vec::new(),
                },
                events: &[],
            })),
            (None, _) => Arc::from(""),
        }
    }

    /// The status of stack `id`, as `berth status ID -o json`.
    pub fn status(&self, id: &str) -> Option<&StackStatus> {
        self.statuses.iter().find(|st| st.stack == id)
    }

    /// The events of every stack or of one, oldest first.
    pub fn events_of(&self, stack: Option<&str>) -> Vec<&Event> {
        self.events
            .iter()
            .filter(|e| stack.is_none_or(|s| e.stack == s))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{keys, Cache, Kv};
    use serde_json::json;

    fn world(kvs: &[(String, serde_json::Value)]) -> World {
        World::decode_for_view(&Cache {
            entries: kvs
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        Kv {
                            key: k.clone(),
                            value: v.to_string().into_bytes(),
                            mod_revision: 1,
                            lease: 0,
                        },
                    )
                })
                .collect(),
            revision: 1,
        })
    }

    fn host(id: &str) -> (String, serde_json::Value) {
        (keys::host(id), json!({"id": id, "address": "10.0.0.1"}))
    }

    fn stack(id: &str) -> (String, serde_json::Value) {
        (
            keys::stack(id),
            json!({"itemListElement": [{"name": "web", "image": "x"}]}),
        )
    }

    #[test]
    fn a_page_that_did_not_change_keeps_its_allocation_and_one_that_did_gets_a_new_one() {
        let first = Snapshot::build(&world(&[host("h1"), stack("a")]), vec![], 1, None);
        let second = Snapshot::build(
            &world(&[host("h1"), host("h2"), stack("a")]),
            vec![],
            2,
            Some(&first),
        );
        let same = |page: &Page| Arc::ptr_eq(&first.fragment(page), &second.fragment(page));
        assert!(same(&Page::Stack("a".into())), "stack a did not change");
        assert!(same(&Page::Events), "no events either way");
        assert!(!same(&Page::Hosts), "a host joined");
        assert!(!same(&Page::Map), "a host joined");
        assert_eq!(second.revision, Some(2));
    }

    #[test]
    fn before_the_first_list_every_page_waits_and_a_missing_stack_has_a_page() {
        let empty = Snapshot::default();
        assert!(empty
            .fragment(&Page::Map)
            .contains("Waiting for the controller"));
        let built = Snapshot::build(&world(&[stack("a")]), vec![], 1, None);
        assert!(built
            .fragment(&Page::Stack("a".into()))
            .contains("<dt>Phase</dt>"));
        assert!(built
            .fragment(&Page::Stack("b".into()))
            .contains("There is no stack b (yet)"));
    }

    #[test]
    fn the_api_data_is_what_the_cli_views_give() {
        let w = world(&[host("h1"), stack("a")]);
        let s = Snapshot::build(&w, vec![], 1, None);
        assert_eq!(s.hosts, crate::view::hosts(&w));
        assert!(s.statuses.is_empty(), "no status was written");
        assert!(s.status("a").is_none());
    }
}
