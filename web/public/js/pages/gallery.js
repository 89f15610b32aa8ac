// The frames of a `frames` step: a thumbnail per frame with its requested and actual time
// (from manifest.json), a larger view on click, and the zip to download.

import { get } from '../api.js';
import { h, replace, seconds } from '../dom.js';

export async function galleryPage(main, id, stepName) {
  document.title = `Frames · Vidsnap`;
  const job = await get(`/v1/jobs/${id}`);
  const step = job.steps.find((s) => s.name === stepName);
  if (!step) throw new Error(`job ${id} has no step ${stepName}`);
  const byName = Object.fromEntries(step.artefacts.map((a) => [a.name, a]));
  const manifest = byName.manifest ? await (await fetch(byName.manifest.url)).json() : { frames: [] };
  const zip = step.artefacts.find((a) => a.name === 'zip');
  const viewer = h('dialog', { class: 'viewer', 'aria-label': 'Frame' });
  const grid = h('ul', { class: 'gallery' }, manifest.frames.map((frame) => {
    const artefact = byName[`frames/${frame.file}`];
    if (!artefact) return null;
    const caption = `${frame.file}: requested ${seconds(frame.requested_time)}, actual ${seconds(frame.actual_time)}`;
    const open = () => {
      replace(viewer,
        h('figure', {}, h('img', { src: artefact.url, alt: caption, width: frame.width, height: frame.height }),
          h('figcaption', {}, caption, ` · ${frame.width}×${frame.height}`)),
        h('form', { method: 'dialog' }, h('button', { type: 'submit', autofocus: true }, 'Close')));
      viewer.showModal();
    };
    return h('li', {}, h('button', { type: 'button', class: 'frame', onclick: open, 'aria-label': `Open ${caption}` },
      h('img', { src: artefact.url, alt: '', loading: 'lazy', width: 240, height: Math.round(240 * frame.height / frame.width) })),
    h('p', {}, h('span', {}, `requested ${seconds(frame.requested_time)}`), h('br'), h('span', { class: 'hint' }, `actual ${seconds(frame.actual_time)}`)));
  }));
  replace(main,
    h('p', {}, h('a', { href: `/jobs/${id}` }, '← Job ', id.slice(-8))),
    h('h1', {}, `Frames of ${stepName}`),
    h('p', {}, `${manifest.frames.length} frames`, manifest.interval ? `, every ${seconds(manifest.interval)} (${manifest.mode}, ${manifest.format})` : '', '. ',
      zip ? h('a', { href: zip.url, download: '', class: 'button' }, 'Download the zip') : null),
    grid, viewer);
}
