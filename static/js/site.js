// Behaviour that would otherwise sit inline in the templates, which the
// Content-Security-Policy forbids (script-src 'self', no inline handlers).

// htmx drops 4xx/5xx answers by default. An element marked
// data-swap-error-statuses="400 503 ..." takes answers with those statuses
// too (they carry the message to show); htmx fires before-swap on the target.
document.addEventListener("htmx:beforeSwap", (event) => {
  const box = event.target.closest("[data-swap-error-statuses]");
  if (!box) return;
  const statuses = box.dataset.swapErrorStatuses.split(/\s+/).map(Number);
  if (statuses.includes(event.detail.xhr.status)) {
    event.detail.shouldSwap = true;
    event.detail.isError = false;
  }
});
