// sleepstudy: random intercept + random slope of Days, Mplus default priors.
//   Reaction_ij = b_j0 + b_j1 * Days_ij + e_ij,  e_ij ~ N(0, sigma2)
//   (b_j0, b_j1)' ~ MVN((g0, g1)', Sigma)          (centred random effects)
// Priors (Mplus defaults): g flat; Sigma flat on the covariance matrix
// (IW(0, -K-1)); sigma2 flat on the variance scale (IG(-1, 0)).
// No prior statements: Stan's cov_matrix / <lower=0> transforms include
// the Jacobian, so the implied prior is uniform on Sigma and on sigma2.
data {
  int<lower=1> N;
  int<lower=1> J;
  int<lower=1, upper=J> subj[N];
  vector[N] days;
  vector[N] reaction;
}
parameters {
  vector[2] g;                 // g[1] = between: reaction~1, g[2] = between: s~1
  cov_matrix[2] Sigma;         // between covariance of (b_j0, b_j1)
  real<lower=0> sigma2;        // within residual variance
  vector[2] b[J];              // centred random effects
}
model {
  vector[J] b0;
  vector[J] b1;
  for (j in 1:J) {
    b0[j] = b[j][1];
    b1[j] = b[j][2];
  }
  b ~ multi_normal(g, Sigma);
  reaction ~ normal(b0[subj] + b1[subj] .* days, sqrt(sigma2));
}
