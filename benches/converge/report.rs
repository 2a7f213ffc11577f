//! The targets, and the summary that ends the report: each figure against its target.

pub(crate) const TARGET_CONVERGE: f64 = 1.15;
pub(crate) const TARGET_COMPOSE: f64 = 1.5;
pub(crate) const TARGET_TEARDOWN: f64 = 1.0;
pub(crate) const TARGET_REACTION: f64 = 0.5;
pub(crate) const TARGET_IDLE_CPU: f64 = 1.0;
pub(crate) const TARGET_IDLE_RSS_MB: f64 = 30.0;

/// A median (min-max), as the tables print it.
pub(crate) fn fmt3(v: (f64, f64, f64)) -> String {
    format!("{:.2} ({:.2}-{:.2})", v.0, v.1, v.2)
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**missed**"
    }
}

#[derive(Default)]
pub(crate) struct Summary {
    rows: Vec<(String, String, String, &'static str)>,
}

impl Summary {
    pub(crate) fn add(&mut self, what: &str, figure: String, target: &str, ok: bool) {
        self.rows
            .push((what.to_owned(), figure, target.to_owned(), verdict(ok)));
    }

    pub(crate) fn print(&self) {
        println!("\n### Summary against the targets\n");
        println!("| what | figure | target | |");
        println!("|---|---|---|---|");
        for (what, figure, target, v) in &self.rows {
            println!("| {what} | {figure} | {target} | {v} |");
        }
    }
}
