// The desk's countdowns to the next notice, kept current; the page reads right without them.
"use strict";
function tick() {
  const now = Date.now();
  for (const el of document.querySelectorAll("time.countdown")) {
    const minutes = Math.round((Date.parse(el.getAttribute("datetime")) - now) / 60000);
    el.textContent = minutes < 0 ? `${-minutes} min late` : `in ${minutes} min`;
    el.classList.toggle("late", minutes < 0);
  }
}
document.addEventListener("DOMContentLoaded", () => {
  tick();
  setInterval(tick, 15000);
});
