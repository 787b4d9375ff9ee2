// The Shared World browser player. Talks to the JSON API; progress arrives by Server-Sent Events.
// The member's key lives only in the `memberKey` variable below: never in storage, never in a URL.
"use strict";

(function () {
  const worldId = document.body.dataset.world;
  const base = "/worlds/" + encodeURIComponent(worldId);
  const $ = (id) => document.getElementById(id);
  const els = {
    name: $("world-name"), crumbs: $("breadcrumbs"), restart: $("restart"), clip: $("clip"),
    placeholder: $("placeholder"), title: $("title"), narration: $("narration"), status: $("status"),
    progress: $("progress"), bar: $("progress-bar"), choices: $("choices"), form: $("key-form"),
    cost: $("key-cost"), keyInput: $("key-input"), keyError: $("key-error"), keyCancel: $("key-cancel"),
    mapTree: $("map-tree"),
  };

  let memberKey = null; // this session only
  let world = {};
  let current = null; // the scene shown
  let formFor = null; // {path, retry} the key form is open for
  const streams = new Map(); // path -> EventSource
  const labels = new Map([["", "Opening"]]); // path -> short label, for breadcrumbs and map
  const explored = new Set(); // ready paths seen this session (the map)

  const pick = (obj, ...names) => {
    for (const n of names) if (obj && obj[n] !== undefined && obj[n] !== null) return obj[n];
    return undefined;
  };

  function needsKey(scene) {
    const flag = pick(scene, "needsKey", "keyRequired") ?? pick(world, "needsKey", "keyRequired");
    if (typeof flag === "boolean") return flag;
    return document.body.dataset.needsKey === "true";
  }

  function costOf(scene) {
    const v = pick(scene, "estimatedCostUsd", "estimatedCost", "costUsd") ??
      pick(world, "estimatedCostUsd", "estimatedCost", "costUsd");
    if (typeof v === "number") return v;
    const page = parseFloat(document.body.dataset.costUsd);
    return Number.isFinite(page) ? page : undefined;
  }

  function costText(scene) {
    const c = costOf(scene);
    if (c === undefined) return needsKey(scene) ? "cost unknown" : "free";
    if (c === 0) return "free";
    return "est. $" + c.toFixed(2);
  }

  async function getJSON(url) {
    const r = await fetch(url, { headers: { Accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(body.detail || "The server answered " + r.status + ".");
    return body;
  }

  async function postJSON(url, data) {
    const r = await fetch(url, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(data),
    });
    const body = await r.json().catch(() => ({}));
    return { ok: r.ok, status: r.status, body };
  }

  const parentOf = (p) => (p.includes("/") ? p.slice(0, p.lastIndexOf("/")) : "");
  const childPath = (p, i) => (p === "" ? String(i) : p + "/" + i);

  function steps(path) {
    const out = [""];
    if (path === "") return out;
    const parts = path.split("/");
    for (let i = 1; i <= parts.length; i++) out.push(parts.slice(0, i).join("/"));
    return out;
  }

  function renderCrumbs(path) {
    els.crumbs.textContent = "";
    steps(path).forEach((step, i, all) => {
      if (i > 0) {
        const sep = document.createElement("span");
        sep.className = "sep";
        sep.textContent = "›";
        els.crumbs.append(sep);
      }
      const label = labels.get(step) || "Choice " + (Number(step.split("/").pop()) + 1);
      if (i === all.length - 1) {
        const here = document.createElement("span");
        here.textContent = label;
        here.setAttribute("aria-current", "page");
        els.crumbs.append(here);
      } else {
        const a = document.createElement("a");
        a.href = "#" + step;
        a.textContent = label;
        a.addEventListener("click", (e) => { e.preventDefault(); go(step); });
        els.crumbs.append(a);
      }
    });
  }

  function renderMap() {
    els.mapTree.textContent = "";
    const sorted = [...explored].sort((a, b) => a.split("/").length - b.split("/").length || a.localeCompare(b));
    for (const p of sorted) {
      const li = document.createElement("li");
      li.style.marginLeft = (p === "" ? 0 : p.split("/").length) * 1.2 + "em";
      const a = document.createElement("a");
      a.href = "#" + p;
      a.textContent = labels.get(p) || p;
      a.addEventListener("click", (e) => { e.preventDefault(); go(p); });
      li.append(a);
      els.mapTree.append(li);
    }
  }

  function showProgress(event) {
    els.progress.hidden = false;
    els.bar.style.width = Math.max(0, Math.min(100, event.progress || 0)) + "%";
    let text = "Being made… " + (event.progress || 0) + "%";
    if (event.stage) text += " (" + event.stage + ")";
    if (event.providerStatus && event.elapsedSeconds != null) {
      text = "Being made… " + event.providerStatus + ", " + Math.round(event.elapsedSeconds) + " s";
      if (event.typicalSeconds) text += " of about " + Math.round(event.typicalSeconds) + " s";
    }
    els.status.textContent = text;
  }

  // One stream per branch; a re-render hands it its new listener (the newest one wins).
  function follow(path, onEvent) {
    const known = streams.get(path);
    if (known) { known.onEvent = onEvent; return; }
    const entry = { es: new EventSource(base + "/events?path=" + encodeURIComponent(path)), onEvent };
    streams.set(path, entry);
    entry.es.onmessage = (msg) => {
      const event = JSON.parse(msg.data);
      if (event.status !== "queued") { entry.es.close(); streams.delete(path); }
      entry.onEvent(event);
    };
  }

  function stopStreams() {
    for (const entry of streams.values()) entry.es.close();
    streams.clear();
  }

  function playClip(scene) {
    els.placeholder.hidden = true;
    els.clip.hidden = false;
    if (scene.posterUrl) els.clip.poster = scene.posterUrl;
    if (els.clip.getAttribute("src") !== scene.videoUrl) els.clip.src = scene.videoUrl;
    const played = els.clip.play();
    if (played && played.catch) played.catch(() => {});
  }

  function showPlaceholder(text) {
    els.clip.pause();
    els.clip.removeAttribute("src");
    els.clip.load();
    els.clip.hidden = true;
    els.placeholder.hidden = false;
    els.placeholder.textContent = text;
  }

  function choiceButton(scene, i) {
    const path = (scene.childrenPaths && scene.childrenPaths[i]) || childPath(scene.path, i);
    const label = (scene.choicesShort && scene.choicesShort[i]) || scene.choices[i];
    const status = (scene.choicesStatus && scene.choicesStatus[i]) || "pending";
    labels.set(path, label);
    const li = document.createElement("li");
    const b = document.createElement("button");
    b.type = "button";
    b.className = "choice " + status;
    b.dataset.path = path;
    b.dataset.status = status;
    b.title = scene.choices[i] || label;
    const l = document.createElement("span");
    l.className = "label";
    l.textContent = label;
    const badge = document.createElement("span");
    badge.className = "badge";
    b.append(l, badge);
    if (status === "ready") {
      badge.textContent = "instant";
      explored.add(path);
    } else if (status === "queued") {
      badge.textContent = "being made";
      const mini = document.createElement("div");
      mini.className = "mini";
      const fill = document.createElement("div");
      mini.append(fill);
      b.append(mini);
      follow(path, (event) => {
        if (event.status === "queued") {
          badge.textContent = "being made · " + (event.progress || 0) + "%";
          fill.style.width = (event.progress || 0) + "%";
        } else if (current && current.path === scene.path) {
          load(scene.path, true);
        }
      });
    } else if (status === "failed") {
      badge.textContent = "needs retry · " + costText(scene);
    } else {
      badge.textContent = "unexplored · " + costText(scene);
    }
    b.addEventListener("click", () => choose(scene, path, status));
    li.append(b);
    return li;
  }

  function render(scene) {
    current = scene;
    const path = scene.path;
    if (scene.triggerChoice && path !== "" && !labels.has(path)) labels.set(path, scene.triggerChoice);
    renderCrumbs(path);
    els.title.textContent = scene.title || (path === "" ? "The opening scene" : labels.get(path) || "");
    els.narration.textContent = scene.scenarioDisplay || "";
    els.choices.textContent = "";
    els.progress.hidden = true;
    els.status.textContent = "";
    if (scene.status === "ready") {
      explored.add(path);
      if (scene.title) labels.set(path, path === "" ? scene.title : labels.get(path) || scene.title);
      playClip(scene);
      (scene.choices || []).forEach((_, i) => els.choices.append(choiceButton(scene, i)));
    } else if (scene.status === "queued") {
      showPlaceholder("This scene is being made…");
      showProgress({ progress: scene.progress || 0 });
      follow(path, (event) => {
        if (event.status === "queued") showProgress(event);
        else load(path, true);
      });
    } else {
      const failed = scene.status === "failed";
      const hidden = scene.status === "hidden"; // removed by the admins: it can be made again
      showPlaceholder(
        failed ? "Making this scene failed." : hidden ? "Removed by the admins." : "Nobody has explored this scene yet."
      );
      if (failed || hidden) els.status.textContent = scene.failureDetail || "Making this scene failed.";
      const li = document.createElement("li");
      const b = document.createElement("button");
      b.type = "button";
      b.className = "choice " + (failed ? "failed" : "pending");
      b.dataset.path = path;
      b.dataset.status = scene.status;
      b.textContent = (failed ? "Try again · " : "Make this scene · ") + costText(scene);
      b.addEventListener("click", () => claim(scene, path, failed));
      li.append(b);
      els.choices.append(li);
    }
    renderMap();
  }

  async function load(path, keepStreams) {
    if (!keepStreams) stopStreams();
    try {
      const query = "?path=" + encodeURIComponent(path);
      const [scene, trail] = await Promise.all([
        getJSON(base + "/scenes" + query),
        getJSON(base + "/trail" + query).catch(() => null), // titles: not in the original's JSON
      ]);
      if (trail && scene.status === "ready") scene.title = trail.steps[trail.steps.length - 1].title;
      render(scene);
    } catch (err) {
      els.status.textContent = err.message;
    }
  }

  function go(path) {
    closeForm();
    if (location.hash.slice(1) !== path) history.replaceState(null, "", path ? "#" + path : location.pathname);
    load(path, false);
  }

  function choose(scene, path, status) {
    if (status === "ready" || status === "queued") go(path);
    else claim(scene, path, status === "failed");
  }

  function claim(scene, path, retry) {
    if (needsKey(scene) && !memberKey) openForm(scene, path, retry);
    else send(scene, path, retry);
  }

  function openForm(scene, path, retry, error) {
    formFor = { scene, path, retry };
    els.form.hidden = false;
    const cost = costOf(scene);
    const price = cost === undefined ? "an unknown amount" : cost === 0 ? "nothing" : "about $" + cost.toFixed(2);
    els.cost.textContent = "Making “" + (labels.get(path) || "this scene") + "” costs " + price +
      ", paid with your own key.";
    els.keyError.textContent = error || "";
    els.keyInput.value = "";
    els.keyInput.focus();
  }

  function closeForm() {
    formFor = null;
    els.form.hidden = true;
    els.keyInput.value = "";
    els.keyError.textContent = "";
  }

  async function send(scene, path, retry) {
    const data = retry ? {} : { path };
    if (memberKey) data.apiKey = memberKey;
    els.status.textContent = "Asking to make this scene…";
    const url = retry ? base + "/scenes/" + path + "/retry" : base + "/scenes";
    let answer;
    try {
      answer = await postJSON(url, data);
    } catch (err) {
      els.status.textContent = "The server could not be reached.";
      return;
    }
    if (answer.ok) {
      closeForm();
      go(path);
      return;
    }
    const detail = answer.body.detail || "That did not work (" + answer.status + ").";
    els.status.textContent = "";
    if (needsKey(scene) || formFor || [400, 401, 403].includes(answer.status)) {
      memberKey = null; // a refused key is forgotten at once
      openForm(scene, path, retry, detail);
    } else {
      els.status.textContent = detail;
    }
  }

  els.form.addEventListener("submit", (e) => {
    e.preventDefault();
    if (!formFor) return;
    const key = els.keyInput.value.trim();
    if (!key) return;
    memberKey = key;
    els.keyInput.value = "";
    send(formFor.scene, formFor.path, formFor.retry);
  });
  els.keyCancel.addEventListener("click", closeForm);
  els.restart.addEventListener("click", () => go(""));

  getJSON(base).then((w) => { world = w; }).catch(() => {}).finally(() => {
    els.name.textContent = "Shared World · " + worldId;
    load(decodeURIComponent(location.hash.slice(1)), false);
  });
})();
