// Progressive enhancement only: every form works without this file.
// A form with data-confirm asks before a consequential action is sent.
document.addEventListener("submit", (event) => {
  const question = event.target instanceof HTMLFormElement && event.target.dataset.confirm;
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
