// Hides the catalogue rows that do not contain the filter text.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const input = document.getElementById("filter");
  const count = document.getElementById("count");
  const rows = Array.from(document.querySelectorAll("#books tbody tr"));

  function applyFilter() {
    const needle = input.value.trim().toLowerCase();
    let visibleCount = 0;
    for (const row of rows) {
      const match = row.textContent.toLowerCase().includes(needle);
      row.hidden = !match;
      if (match) {
        visibleCount += 1;
      }
    }
    count.textContent = visibleCount === 1 ? "1 book" : `${visibleCount} books`;
  }

  input.addEventListener("input", applyFilter);
  applyFilter();
});
