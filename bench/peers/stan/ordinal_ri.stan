// ordinal_ri: two-level ordinal probit (4 categories) with a random
// intercept, Mplus default priors.
//   P(u_ij = k) = Phi(tau_{k+1} - eta_ij) - Phi(tau_k - eta_ij),
//   k = 0..3, tau_0 = -inf, tau_4 = +inf, eta_ij = beta x_ij + a_j,
//   a_j ~ N(0, psi)   (within latent-response variance fixed at 1)
// Priors (Mplus defaults): beta and the thresholds flat (ordered, no prior
// statement); psi flat on the variance scale (IG(-1, 0)); no prior
// statements. a_j centred (sampled better than non-centred here: ESS of the
// thresholds about 2x, of psi about 6x, with 20 observations per cluster).
// Stan's ordered_probit codes categories 1..K, so u + 1 is passed.
data {
  int<lower=1> N;
  int<lower=1> J;
  int<lower=2> K;              // number of categories
  int<lower=1, upper=J> cl[N];
  int<lower=0, upper=K - 1> u[N];
  vector[N] x;
}
transformed data {
  int y[N];
  for (n in 1:N) y[n] = u[n] + 1;
}
parameters {
  real beta;                   // u~x
  ordered[K - 1] tau;          // thresholds u$1 < u$2 < u$3
  real<lower=0> psi;           // between variance of a_j
  vector[J] a;                 // centred random intercepts
}
model {
  a ~ normal(0, sqrt(psi));
  y ~ ordered_probit(beta * x + a[cl], tau);
}
