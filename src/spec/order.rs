//! Which service starts before which: the dependency graph, its cycles and the start
//! order. Pure.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet};

use super::stack::Stack;

/// Service name to index; the first wins, so a duplicate name cannot redirect dependencies.
/// Empty names are left out so that a dependency on "" is reported as unknown.
pub(super) fn first_index_by_name(stack: &Stack) -> HashMap<&str, usize> {
    let mut names = HashMap::new();
    for (i, service) in stack.item_list_element.iter().enumerate() {
        if !service.name.is_empty() {
            names.entry(service.name.as_str()).or_insert(i);
        }
    }
    names
}

/// For each service, the indices of the services it depends on; unknown names and
/// self-references are left out (they are reported on their own).
pub(super) fn dependency_graph(stack: &Stack, names: &HashMap<&str, usize>) -> Vec<Vec<usize>> {
    stack
        .item_list_element
        .iter()
        .enumerate()
        .map(|(i, service)| {
            service
                .dependencies()
                .into_iter()
                .filter_map(|name| names.get(name).copied())
                .filter(|&j| j != i)
                .collect()
        })
        .collect()
}

/// Cycles of `graph`, one per back edge of a depth-first search, each rotated to start at
/// its lowest index so the same cycle is never reported twice. Iterative, because a long
/// dependency chain in a hostile document must not overflow the stack.
pub(super) fn find_cycles(graph: &[Vec<usize>], limit: usize) -> Vec<Vec<usize>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Visit {
        New,
        OnPath,
        Done,
    }
    let mut visit = vec![Visit::New; graph.len()];
    let mut seen = HashSet::new();
    let mut cycles = Vec::new();
    for root in 0..graph.len() {
        if visit.get(root) != Some(&Visit::New) {
            continue;
        }
        // (node, index of the next edge to follow)
        let mut path: Vec<(usize, usize)> = vec![(root, 0)];
        if let Some(v) = visit.get_mut(root) {
            *v = Visit::OnPath;
        }
        while let Some(&(node, next)) = path.last() {
            let Some(&to) = graph.get(node).and_then(|edges| edges.get(next)) else {
                if let Some(v) = visit.get_mut(node) {
                    *v = Visit::Done;
                }
                path.pop();
                continue;
            };
            if let Some(top) = path.last_mut() {
                top.1 += 1;
            }
            match visit.get(to) {
                Some(Visit::New) => {
                    if let Some(v) = visit.get_mut(to) {
                        *v = Visit::OnPath;
                    }
                    path.push((to, 0));
                }
                Some(Visit::OnPath) => {
                    let start = path.iter().position(|&(v, _)| v == to).unwrap_or(0);
                    let mut cycle: Vec<usize> = path.iter().skip(start).map(|&(v, _)| v).collect();
                    let lowest = cycle
                        .iter()
                        .enumerate()
                        .min_by_key(|&(_, &v)| v)
                        .map_or(0, |(k, _)| k);
                    cycle.rotate_left(lowest);
                    if seen.insert(cycle.clone()) {
                        cycles.push(cycle);
                        if cycles.len() >= limit {
                            return cycles;
                        }
                    }
                }
                _ => {}
            }
        }
    }
    cycles
}

/// Indices into `stack.item_list_element` in start order: dependencies first, ties broken
/// by `position` (absent last) then index. On a cyclic stack the services caught in or
/// behind a cycle come last, in tie-break order, so every index still appears once.
pub fn start_order(stack: &Stack) -> Vec<usize> {
    let services = &stack.item_list_element;
    let graph = dependency_graph(stack, &first_index_by_name(stack));
    let tie_break = |i: usize| {
        let position = services.get(i).and_then(|s| s.position);
        Reverse((position.is_none(), position, i))
    };

    let mut waiting_on = vec![0usize; services.len()];
    let mut dependents = vec![Vec::new(); services.len()];
    for (i, dependencies) in graph.iter().enumerate() {
        for &j in dependencies {
            if let Some(count) = waiting_on.get_mut(i) {
                *count += 1;
            }
            if let Some(list) = dependents.get_mut(j) {
                list.push(i);
            }
        }
    }

    let mut ready: BinaryHeap<_> = (0..services.len())
        .filter(|&i| waiting_on.get(i) == Some(&0))
        .map(tie_break)
        .collect();
    let mut order = Vec::with_capacity(services.len());
    let mut started = vec![false; services.len()];
    while let Some(Reverse((_, _, i))) = ready.pop() {
        order.push(i);
        if let Some(s) = started.get_mut(i) {
            *s = true;
        }
        for &dependent in dependents.get(i).map_or(&[][..], Vec::as_slice) {
            if let Some(count) = waiting_on.get_mut(dependent) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    ready.push(tie_break(dependent));
                }
            }
        }
    }

    let mut stuck: Vec<usize> = (0..services.len())
        .filter(|&i| started.get(i) == Some(&false))
        .collect();
    stuck.sort_by_key(|&i| tie_break(i).0);
    order.extend(stuck);
    order
}

#[cfg(test)]
mod tests;
