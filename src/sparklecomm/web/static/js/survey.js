// The customers' survey page: sends the answer to the API without leaving the page. The
// page works without this script too (the form posts to /survey/{token}).
const form = document.getElementById("survey-form");
const card = document.getElementById("main");

function say(state, lines) {
  // The thank-you (or why not) in place of the form, announced to screen readers.
  const box = document.createElement("div");
  box.setAttribute("role", state === "invalid" || state === "expired" ? "alert" : "status");
  box.dataset.testid = `survey-${state}`;
  lines.forEach(([text, muted], i) => {
    const p = document.createElement("p");
    if (muted) p.className = "muted";
    if (i === 0) { const b = document.createElement("strong"); b.textContent = text; p.append(b); } else p.textContent = text;
    box.append(p);
  });
  form.replaceWith(box);
  card.dataset.state = state;
}

function showError(message) {
  let alert = form.querySelector('[data-testid="survey-error"]');
  if (!alert) {
    alert = document.createElement("div");
    alert.className = "alert error";
    alert.setAttribute("role", "alert");
    alert.dataset.testid = "survey-error";
    form.prepend(alert);
  }
  alert.textContent = message;
}

form?.addEventListener("submit", async (event) => {
  event.preventDefault();
  const data = new FormData(form);
  const score = Number(data.get("score"));
  if (!score) { showError("Choose a score first."); return; }
  const button = form.querySelector('button[type="submit"]');
  button.disabled = true;
  let res;
  try {
    res = await fetch(`/api/v1/surveys/${encodeURIComponent(form.dataset.token)}`, {
      method: "POST",
      credentials: "omit", // the link is the credential; a session has nothing to add
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify({ score, comment: String(data.get("comment") || "") || null }),
    });
  } catch {
    form.submit(); // offline for a moment: the plain form tries once more
    return;
  }
  const body = await res.json().catch(() => ({}));
  button.disabled = false;
  if (res.status === 201) {
    say("thanks", [["Thank you!"], [`Your answer (${body.score} out of ${body.max_score}) helps us do better.`], ["You can close this page.", true]]);
  } else if (res.status === 409) {
    say("answered", [["Thank you: we already have your answer."], ["Each conversation can be rated once. You can close this page.", true]]);
  } else if (res.status === 410) {
    say("expired", [["This survey has closed."], [body.detail || "", true]]);
  } else if (res.status === 404) {
    say("invalid", [["This survey link does not work."], [body.detail || "", true]]);
  } else {
    showError(body.detail || "Your answer could not be sent; please try again.");
  }
});
