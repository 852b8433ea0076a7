/* grader serve: keyboard and saving without reloading. Every form also works without this file. */
(function () {
  "use strict";
  var body = document.body;
  var form = document.getElementById("mark-form");
  var csrf = (document.querySelector('meta[name="csrf-token"]') || {}).content || "";
  var status = document.getElementById("status");
  var busy = false, again = null, conflicted = false, waiting = [];

  function setText(id, text) {
    var element = document.getElementById(id);
    if (element && text !== undefined) { element.textContent = text; }
  }

  function say(text, bad) {
    if (!status) { return; }
    status.textContent = text;
    status.className = "status" + (bad ? " bad" : "");
  }

  function boxes() { return form ? Array.prototype.slice.call(form.querySelectorAll("input.line-box")) : []; }

  function isAuto() { return body.dataset.grading === "auto"; }

  function overriding() {
    var box = document.getElementById("override");
    return box ? box.checked : false;
  }

  function showState(data, keepInputs) {
    document.getElementById("version").value = data.version;
    setText("item-score", data.item_score);
    setText("total", data.total);
    setText("progress", data.progress);
    say(data.status, false);
    Object.keys(data.applied || {}).forEach(function (line) {
      var row = form.querySelector('li[data-line="' + CSS.escape(line) + '"]');
      if (row) { row.classList.toggle("applied", data.applied[line]); }
    });
    if (!keepInputs) {
      boxes().forEach(function (box) { box.checked = data.lines.indexOf(box.value) >= 0; });
      var comment = document.getElementById("comment");
      if (comment && document.activeElement !== comment) { comment.value = data.comment; }
      var override = document.getElementById("override");
      if (override) { override.checked = data.override; enableLines(); }
    }
  }

  function showConflict(data) {
    conflicted = true;
    var panel = document.getElementById("conflict");
    setText("conflict-message", data.message);
    setText("conflict-theirs", data.theirs.text);
    setText("conflict-mine", data.mine.text);
    Array.prototype.forEach.call(panel.querySelectorAll('input[name="version"]'), function (input) {
      input.value = data.version;
    });
    var fields = document.getElementById("mine-fields");
    while (fields.firstChild) { fields.removeChild(fields.firstChild); }
    function hidden(name, value) {
      var input = document.createElement("input");
      input.type = "hidden"; input.name = name; input.value = value;
      fields.appendChild(input);
    }
    data.mine.lines.forEach(function (line) { hidden("lines", line); });
    hidden("comment", data.mine.comment);
    if (data.mine.override) { hidden("override", "1"); }
    panel.classList.remove("hidden");
    say("not saved: another TA changed this mark; choose below", true);
  }

  function finished() {
    busy = false;
    if (again !== null) { var action = again; again = null; save(action); return; }
    var callbacks = waiting; waiting = [];
    callbacks.forEach(function (callback) { callback(); });
  }

  function save(action) {
    if (!form) { return; }
    if (conflicted) { say("resolve the conflict first (Keep theirs or Use mine)", true); return; }
    if (busy) { again = action || "save"; return; }
    busy = true;
    var data = new FormData(form);
    data.set("action", action || "save");
    say("saving…", false);
    fetch(body.dataset.save, {
      method: "POST", body: data, credentials: "same-origin", keepalive: true,
      headers: {"Accept": "application/json", "X-CSRF-Token": csrf}
    }).then(function (response) {
      return response.json().then(function (json) { return {code: response.status, json: json}; });
    }).then(function (result) {
      if (result.code === 200) {
        showState(result.json, again !== null);
      } else if (result.code === 409) {
        again = null;
        showConflict(result.json);
      } else {
        say("not saved: " + (result.json.error || result.code) + " (your ticks are kept here)", true);
        if (result.code === 503) { again = action || "save"; setTimeout(finished, 2000); return; }
      }
      finished();
    }).catch(function (error) {
      say("not saved: " + error + " (your ticks are kept here)", true);
      finished();
    });
  }

  function afterSaving(callback) {
    if (busy || again !== null) { waiting.push(callback); } else { callback(); }
  }

  function follow(id) {
    var link = document.getElementById(id);
    if (link) { afterSaving(function () { window.location.href = link.href; }); }
  }

  function enableLines() {
    if (!isAuto()) { return; }
    boxes().forEach(function (box) { box.disabled = !overriding(); });
  }

  function changed() {
    if (isAuto()) {
      if (!overriding()) { return; }
      var comment = document.getElementById("comment");
      if (!comment.value.trim()) { say("write a comment (c) saying why, then save (Ctrl+Enter)", true); return; }
    }
    save("save");
  }

  function toggle(number) {
    var box = boxes().filter(function (b) { return b.dataset.key === String(number); })[0];
    if (!box) { return; }
    if (box.disabled) { say("an automatic item: tick 'override' first (o)", true); return; }
    box.checked = !box.checked;
    changed();
  }

  if (form) {
    boxes().forEach(function (box) { box.addEventListener("change", changed); });
    var comment = document.getElementById("comment");
    comment.addEventListener("change", changed);
    var override = document.getElementById("override");
    if (override) { override.addEventListener("change", enableLines); }
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      save(event.submitter ? event.submitter.value : "save");
    });
    enableLines();
    window.addEventListener("beforeunload", function (event) {
      if (busy || again !== null) { event.preventDefault(); event.returnValue = ""; }
    });
  }

  document.addEventListener("keydown", function (event) {
    var target = event.target, tag = target.tagName;
    var typing = tag === "TEXTAREA" || (tag === "INPUT" && target.type !== "checkbox") || tag === "SELECT";
    if (typing) {
      if (event.key === "Escape") { target.blur(); }
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && target.id === "comment") {
        event.preventDefault(); target.blur(); save("save");
      }
      return;
    }
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    var key = event.key;
    if (key >= "1" && key <= "9") { event.preventDefault(); toggle(Number(key)); }
    else if (key === "n") { follow("next"); }
    else if (key === "p") { follow("prev"); }
    else if (key === "u") { follow("next-ungraded"); }
    else if (key === "g") { follow("group-link"); }
    else if (key === "c" && document.getElementById("comment")) { event.preventDefault(); document.getElementById("comment").focus(); }
    else if (key === "z" && form) { event.preventDefault(); save("undo"); }
    else if (key === "o" && document.getElementById("override")) {
      var box = document.getElementById("override"); box.checked = !box.checked; enableLines();
    }
  });
})();
