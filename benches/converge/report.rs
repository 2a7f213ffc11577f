//! The targets of the convergence benchmark; the summary against them is printed by
//! `support::summary`.

pub(crate) use crate::support::summary::{fmt3, Summary};

pub(crate) const TARGET_CONVERGE: f64 = 1.15;
pub(crate) const TARGET_COMPOSE: f64 = 1.5;
pub(crate) const TARGET_TEARDOWN: f64 = 1.0;
pub(crate) const TARGET_REACTION: f64 = 0.5;
pub(crate) const TARGET_IDLE_CPU: f64 = 1.0;
pub(crate) const TARGET_IDLE_RSS_MB: f64 = 30.0;
