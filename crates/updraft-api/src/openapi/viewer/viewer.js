// The API reference viewer: renders /openapi.json with DOM calls only (no innerHTML, no outside script), so the
// page runs under a Content-Security-Policy of 'self'.
"use strict";

const METHODS = ["get", "put", "post", "delete", "patch"];

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, value);
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(typeof child === "string" ? document.createTextNode(child) : child);
  }
  return node;
}

// Inline Markdown: `code`, **bold**, [text](url); everything else is text.
function inline(text) {
  const parts = [];
  const pattern = /`([^`]+)`|\*\*([^*]+)\*\*|\[([^\]]+)\]\(([^)\s]+)\)/g;
  let last = 0;
  for (const match of text.matchAll(pattern)) {
    parts.push(text.slice(last, match.index));
    if (match[1] !== undefined) parts.push(el("code", {}, match[1]));
    else if (match[2] !== undefined) parts.push(el("strong", {}, match[2]));
    else {
      const safe = /^(https?:|\/|#)/.test(match[4]) ? match[4] : "#";
      parts.push(el("a", { href: safe }, match[3]));
    }
    last = match.index + match[0].length;
  }
  parts.push(text.slice(last));
  return parts;
}

// Block Markdown: headings, tables, lists and paragraphs: enough for the reference's own texts.
function markdown(text) {
  const out = el("div", { class: "markdown" });
  const lines = (text || "").split("\n");
  for (let i = 0; i < lines.length; ) {
    const line = lines[i];
    if (!line.trim()) { i++; continue; }
    const heading = /^(#{1,4})\s+(.*)$/.exec(line);
    if (heading) { out.append(el("h" + (heading[1].length + 1), {}, inline(heading[2]))); i++; continue; }
    if (line.startsWith("|")) {
      const rows = [];
      while (i < lines.length && lines[i].startsWith("|")) rows.push(lines[i++]);
      const cells = (row) => row.replace(/^\|/, "").replace(/\|$/, "").split("|").map((c) => c.trim());
      const table = el("table", {}, el("thead", {}, el("tr", {}, cells(rows[0]).map((c) => el("th", {}, inline(c))))));
      const body = el("tbody");
      for (const row of rows.slice(2)) body.append(el("tr", {}, cells(row).map((c) => el("td", {}, inline(c)))));
      table.append(body);
      out.append(table);
      continue;
    }
    if (/^\s*[-*] /.test(line)) {
      const list = el("ul");
      while (i < lines.length && /^\s*[-*] /.test(lines[i])) list.append(el("li", {}, inline(lines[i++].replace(/^\s*[-*] /, ""))));
      out.append(list);
      continue;
    }
    const paragraph = [];
    while (i < lines.length && lines[i].trim() && !/^(#|\||\s*[-*] )/.test(lines[i])) paragraph.push(lines[i++]);
    out.append(el("p", {}, inline(paragraph.join(" "))));
  }
  return out;
}

function resolve(doc, schema) {
  const seen = new Set();
  while (schema && schema.$ref && !seen.has(schema.$ref)) {
    seen.add(schema.$ref);
    schema = schema.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node && node[key], doc);
  }
  return schema || {};
}

function typeName(schema) {
  if (schema.$ref) return schema.$ref.split("/").pop();
  const type = Array.isArray(schema.type) ? schema.type.join(" | ") : schema.type;
  if (type === "array" && schema.items) return "array of " + typeName(schema.items);
  if (schema.enum) return (type || "") + " (" + schema.enum.map((v) => JSON.stringify(v)).join(", ") + ")";
  return type || (schema.oneOf ? "one of" : schema.anyOf ? "any of" : "any");
}

// A schema as a nested list of its properties, to a bounded depth (references may be recursive).
function schemaTree(doc, schema, depth) {
  const resolved = resolve(doc, schema);
  const list = el("ul");
  if (depth > 5) return list;
  for (const [name, property] of Object.entries(resolved.properties || {})) {
    const required = (resolved.required || []).includes(name);
    const target = resolve(doc, property.items && !property.properties ? property.items : property);
    list.append(el("li", {},
      el("code", {}, name), " ", el("span", { class: "muted" }, typeName(property)),
      required ? el("span", { class: "required" }, " required") : null,
      property.description || target.description ? " — " + (property.description || target.description) : null,
      target.properties || target.oneOf ? schemaTree(doc, target, depth + 1) : null));
  }
  for (const [index, variant] of (resolved.oneOf || resolved.anyOf || []).entries()) {
    list.append(el("li", {}, el("span", { class: "muted" }, "variant " + (index + 1) + ": " + typeName(variant)),
      schemaTree(doc, variant, depth + 1)));
  }
  if (resolved.additionalProperties && typeof resolved.additionalProperties === "object") {
    list.append(el("li", {}, el("span", { class: "muted" }, "other members: " + typeName(resolved.additionalProperties))));
  }
  return list;
}

function content(doc, media) {
  const parts = [];
  for (const [type, body] of Object.entries(media || {})) {
    parts.push(el("p", {}, el("code", {}, type), body.schema ? " — " + typeName(body.schema) : ""));
    if (body.schema) {
      const described = resolve(doc, body.schema).description;
      if (described) parts.push(el("p", { class: "muted" }, described));
      parts.push(el("div", { class: "schema" }, schemaTree(doc, body.schema, 0)));
    }
    if (body.example !== undefined) parts.push(el("p", {}, "Example (recorded):"), el("pre", {}, JSON.stringify(body.example, null, 2)));
  }
  return parts;
}

function operation(doc, path, method, op) {
  const id = op.operationId;
  const section = el("section", { class: "operation", id },
    el("h3", {}, el("span", { class: "method " + method }, method.toUpperCase()), el("code", {}, path)),
    op.summary ? el("p", {}, el("strong", {}, inline(op.summary))) : null,
    op.description ? markdown(op.description) : null);
  const security = (op.security || doc.security || []).map((req) => Object.keys(req).join(" + ") || "anonymous");
  if (security.length) section.append(el("p", {}, "Credentials: ", security.map((s) => el("code", {}, s)).flatMap((c, i) => (i ? [" or ", c] : [c]))));
  if ((op.parameters || []).length) {
    const rows = op.parameters.map((p) => el("tr", {}, el("td", {}, el("code", {}, p.name)), el("td", {}, p.in),
      el("td", {}, p.required ? "yes" : "no"), el("td", {}, typeName(p.schema || {})), el("td", {}, inline(p.description || ""))));
    section.append(el("h4", {}, "Parameters"), el("table", {},
      el("thead", {}, el("tr", {}, ["name", "in", "required", "type", "description"].map((h) => el("th", {}, h)))), el("tbody", {}, rows)));
  }
  if (op.requestBody) {
    const body = resolve(doc, op.requestBody);
    section.append(el("h4", {}, "Request body"), body.description ? el("p", {}, inline(body.description)) : null, content(doc, body.content));
  }
  section.append(el("h4", {}, "Responses"));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const response = resolve(doc, raw);
    section.append(el("details", status.startsWith("2") ? { open: "" } : {},
      el("summary", {}, el("strong", {}, status), " ", inline(response.description || "")), content(doc, response.content)));
  }
  return section;
}

function render(doc) {
  const main = document.getElementById("reference");
  const toc = document.getElementById("operations");
  main.replaceChildren(el("h1", {}, doc.info.title + " API reference ", el("span", { class: "muted" }, doc.info.version)),
    markdown(doc.info.description));
  const byTag = new Map((doc.tags || []).map((t) => [t.name, { tag: t, ops: [] }]));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const method of METHODS) {
      if (!item[method]) continue;
      const name = (item[method].tags || ["Other"])[0];
      if (!byTag.has(name)) byTag.set(name, { tag: { name }, ops: [] });
      byTag.get(name).ops.push([path, method, item[method]]);
    }
  }
  for (const { tag, ops } of byTag.values()) {
    if (!ops.length) continue;
    const anchor = "tag-" + tag.name.replace(/\W+/g, "-");
    main.append(el("h2", { class: "tag", id: anchor }, tag.name), tag.description ? markdown(tag.description) : null);
    toc.append(el("li", { class: "tag" }, el("a", { href: "#" + anchor }, tag.name)));
    for (const [path, method, op] of ops) {
      main.append(operation(doc, path, method, op));
      toc.append(el("li", { "data-search": (tag.name + " " + method + " " + path + " " + (op.summary || "")).toLowerCase() },
        el("a", { href: "#" + op.operationId }, el("span", { class: "method " + method }, method.toUpperCase()), path)));
    }
  }
  document.getElementById("filter").addEventListener("input", (event) => {
    const words = event.target.value.toLowerCase().split(/\s+/).filter(Boolean);
    for (const item of toc.querySelectorAll("li[data-search]")) {
      item.hidden = !words.every((w) => item.dataset.search.includes(w));
    }
  });
  if (location.hash) document.getElementById(location.hash.slice(1))?.scrollIntoView();
}

fetch("/openapi.json")
  .then((answer) => {
    if (!answer.ok) throw new Error("/openapi.json answered " + answer.status);
    return answer.json();
  })
  .then(render)
  .catch((err) => {
    document.getElementById("reference").replaceChildren(el("p", { role: "alert" }, "Could not load the reference: " + err.message));
  });
