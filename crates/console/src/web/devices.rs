//! Devices (`/`): the tenant's sites as a tree with their devices and each device's
//! online state, a search box that filters the tree, and (in the page JavaScript) a poll
//! that keeps the states current without a reload.

use super::layout::{section_page, Section};
use super::views::{Device, Site};
use super::{segment, Caller, State};
use axum::extract::State as StateOf;
use axum::response::{IntoResponse, Response};
use maud::{html, Markup};
use std::collections::{BTreeMap, BTreeSet};

pub async fn page(StateOf(options): State, caller: Caller) -> Response {
    let api = caller.remote_services(&options);
    let sites: Vec<Site> = match api.get("/sites").await {
        Ok(sites) => sites,
        Err(error) => return caller.error(error),
    };
    let devices: Vec<Device> = match api.get("/devices").await {
        Ok(devices) => devices,
        Err(error) => return caller.error(error),
    };
    let content = html! {
        div.search {
            label for="search" { "Search sites and devices" }
            input #search type="search" autocomplete="off" placeholder="Name or description";
        }
        @if sites.is_empty() && devices.is_empty() {
            p.empty #tree-empty data-refresh { "No sites or devices you may see yet." }
        }
        (tree(&sites, &devices))
    };
    section_page(&caller.viewer, Section::Devices, "Devices", content).into_response()
}

/// The sites as nested lists, roots first; a site whose parent the caller cannot see is
/// shown as a root, and devices of a site the caller cannot see get an entry of their own.
fn tree(sites: &[Site], devices: &[Device]) -> Markup {
    let known: BTreeSet<&str> = sites.iter().map(|s| s.name.as_str()).collect();
    let mut children: BTreeMap<Option<&str>, Vec<&str>> = BTreeMap::new();
    for site in sites {
        let parent = site
            .parent
            .as_deref()
            .filter(|p| known.contains(p) && *p != site.name);
        children.entry(parent).or_default().push(&site.name);
    }
    for device in devices {
        if !known.contains(device.site.as_str()) {
            let roots = children.entry(None).or_default();
            if !roots.contains(&device.site.as_str()) {
                roots.push(&device.site);
            }
        }
    }
    let mut by_site: BTreeMap<&str, Vec<&Device>> = BTreeMap::new();
    for device in devices {
        by_site.entry(&device.site).or_default().push(device);
    }
    let tree = Tree { children, by_site };
    html! {
        ul #tree {
            @for root in tree.children.get(&None).into_iter().flatten() {
                (tree.site(root, 0))
            }
        }
    }
}

struct Tree<'a> {
    children: BTreeMap<Option<&'a str>, Vec<&'a str>>,
    by_site: BTreeMap<&'a str, Vec<&'a Device>>,
}

/// Deeper nesting than this is cut (a cycle in bad data must not recurse forever).
const MAX_DEPTH: usize = 32;

impl Tree<'_> {
    fn site(&self, name: &str, depth: usize) -> Markup {
        let devices = self
            .by_site
            .get(name)
            .map(Vec::as_slice)
            .unwrap_or_default();
        let sub_sites = self
            .children
            .get(&Some(name))
            .map(Vec::as_slice)
            .unwrap_or_default();
        html! {
            li data-site=(name) {
                span.site-name { (name) }
                @if !devices.is_empty() || (!sub_sites.is_empty() && depth < MAX_DEPTH) {
                    ul {
                        @for device in devices {
                            (device_item(device))
                        }
                        @if depth < MAX_DEPTH {
                            @for sub in sub_sites {
                                (self.site(sub, depth + 1))
                            }
                        }
                    }
                }
            }
        }
    }
}

fn device_item(device: &Device) -> Markup {
    let state = if device.online { "online" } else { "offline" };
    html! {
        li data-device=(device.name) data-description=(device.description) {
            a href={ "/devices/" (segment(&device.name)) } { (device.name) }
            " "
            span.state data-online=(device.online) { (state) }
            @if !device.description.is_empty() {
                " "
                span.description { (device.description) }
            }
        }
    }
}
