"""mfcf built-in plugin: ladder -- MFCVAE (Falck et al., NeurIPS 2021) and its parts.

Registered through the 'mfcf' entry-point group (:mod:`mfcf_ladder.plugin`):

* encoders / decoders ``ladder_fc`` (:mod:`.ladder_fc`) and ``ladder_conv`` (:mod:`.ladder_conv`);
* prior ``mog`` (:mod:`.priors`); likelihoods ``bernoulli``, ``gaussian`` (:mod:`.likelihoods`);
* ELBOs ``mfcvae_mc``, ``mfcvae_analytic``, ``mfcvae_collapsed`` (:mod:`.elbos`);
* schedules ``constant``, ``progressive`` (:mod:`.schedules`);
* model ``mfcvae`` (:mod:`.model`, initialisers in :mod:`.gmm_init`).
"""
