"""Hook implementations of the built-in 'baselines' plugin: the clustering methods MFCVAE is
compared against, trained and evaluated through the same interfaces (docs/baselines.md).

* model ``kmeans`` (:class:`KMeansModel`) -- k-means on raw pixels;
* model ``gmm_pca`` (:class:`GMMPCAModel`) -- PCA, then a Gaussian mixture;
* model ``ae_kmeans`` (:class:`AEKMeansModel`) -- autoencoder, then k-means on its codes;
* model ``dec`` (:class:`DECModel`) -- Deep Embedded Clustering (Xie et al., 2016);
* model ``idec`` (:class:`IDECModel`) -- Improved DEC (Guo et al., 2017);
* model ``vade`` (:class:`VaDEModel`) -- Variational Deep Embedding (Jiang et al., 2017);
* encoder / decoder ``mlp`` (:class:`MLPEncoder`, :class:`MLPDecoder`) -- fully-connected
  networks with one width per layer (d-500-500-2000-10 and its mirror by default).

The single-facet MFCVAE baseline needs no code: it is the ladder plugin's ``mfcvae`` model
with one facet (configs/baselines/*/mfcvae_j1.yaml).
"""

import mfcf

from .ae_kmeans import AEKMeansModel
from .dec import DECModel, IDECModel
from .gmm_pca import GMMPCAModel
from .kmeans import KMeansModel
from .mlp import MLPDecoder, MLPEncoder
from .vade import VaDEModel


@mfcf.hookimpl
def mfcf_register_encoders():
    return [MLPEncoder]


@mfcf.hookimpl
def mfcf_register_decoders():
    return [MLPDecoder]


@mfcf.hookimpl
def mfcf_register_models():
    return [KMeansModel, GMMPCAModel, AEKMeansModel, DECModel, IDECModel, VaDEModel]
