// The "Duplicates" view: groups of pictures that are the same photo (GET /api/dupes), the one to
// keep first, each other one with what it lacks, and buttons that copy the others' paths. It
// deletes nothing. Kept apart from app.js: it only adds a button to the header and a dialog.

import { el } from "./app.js";  // the same module instance the page runs: nothing runs twice

async function copyText(text, button) {
  const label = button.textContent;
  try {
    await navigator.clipboard.writeText(text);
    button.textContent = "Copied";
  } catch {
    window.prompt("Copy the paths:", text);  // no clipboard (plain HTTP on another host)
  }
  setTimeout(() => { button.textContent = label; }, 1500);
}

/** Paths quoted for a POSIX shell, as the CLI's last line gives them. */
function shellJoin(paths) {
  return paths.map((p) => (/^[\w@%+=:,./-]+$/.test(p) ? p : `'${p.replaceAll("'", "'\"'\"'")}'`)).join(" ");
}

function memberCard(member) {
  const facts = member.keep
    ? `keep · ${member.width}×${member.height} ${member.format ?? ""}${member.exif ? " · EXIF" : ""}`
    : member.differs.join("; ");
  return el("figure", { class: member.keep ? "dupe keep" : "dupe" },
    el("img", { src: `api/images/${member.id}/thumbnail`, alt: "", loading: "lazy", decoding: "async" }),
    el("figcaption", {}, el("span", { class: "dupe-name", title: member.path }, member.name),
      el("span", { class: "dupe-facts" }, facts)));
}

function groupView(group) {
  const copy = el("button", { type: "button", class: "quiet" }, "Copy the others' paths");
  copy.addEventListener("click", () => copyText(shellJoin(group.others), copy));
  return el("li", { class: "dupe-group" }, el("div", { class: "dupe-row" }, ...group.members.map(memberCard)), copy);
}

async function show(dialog) {
  const body = dialog.querySelector(".dupes-body");
  body.replaceChildren(el("p", {}, "Looking for copies…"));
  dialog.showModal();
  let report;
  try {
    const response = await fetch("api/dupes", { credentials: "same-origin" });
    report = await response.json();
    if (!response.ok) throw new Error(report?.detail ?? `${response.status}`);
  } catch (e) {
    body.replaceChildren(el("p", { class: "error" }, `Could not look for copies: ${e.message}`));
    return;
  }
  if (!report.groups.length) {
    body.replaceChildren(el("p", {}, `No copies of one photo among ${report.pictures} pictures.`));
    return;
  }
  const copyAll = el("button", { type: "button" }, "Copy all the others' paths");
  copyAll.addEventListener("click", () => copyText(shellJoin(report.others), copyAll));
  const skipped = report.skipped.length
    ? el("p", { class: "dupe-facts" }, `${report.skipped.length} files could not be read and were left out.`) : null;
  const intro = el("p", {}, `${report.groups.length} groups among ${report.pictures} pictures; the first of each `
    + "is the one to keep. Nothing is deleted.", " ", copyAll);
  const groups = el("ul", { class: "dupe-groups" }, ...report.groups.map(groupView));
  body.replaceChildren(...[intro, skipped, groups].filter((node) => node != null));
}

function install() {
  const row = document.querySelector("#search .row");
  if (!row) return;
  const dialog = el("dialog", { id: "dupes", "aria-label": "Duplicates" },
    el("div", { class: "dupes-head" }, el("h2", {}, "Duplicates"),
      el("button", { type: "button", class: "quiet", value: "close" }, "Close")),
    el("div", { class: "dupes-body" }));
  dialog.querySelector(".dupes-head button").addEventListener("click", () => dialog.close());
  document.body.append(dialog);
  const open = el("button", { type: "button", id: "open-dupes", title: "Groups of pictures that are the same photo" },
    "Duplicates");
  open.addEventListener("click", () => show(dialog));
  row.append(open);
}

install();
